package userspace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// TestListenerBudget: with room for 5 listeners, 8 Services get 5, and the
// other 3 are one error that names the limit, the count and what to do;
// once 2 Services leave, the next Sync opens 2 of the refused ones.
func TestListenerBudget(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	opened := 0
	p.listen = func(*frontend) error { opened++; return nil }
	p.nofile, p.budget = 1029, 5
	svcs := make([]*svc, 8)
	for i := range svcs {
		s := newSvc(fmt.Sprintf("b%d", i), v1.ProtocolTCP, netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)}), 80)
		s.eps = []state.Endpoint{{IP: netip.MustParseAddr("10.1.0.1"), Port: 80, Ready: true, Serving: true, Weight: 1}}
		svcs[i] = s
	}
	sn := snap(state.NodeInfo{}, svcs...)
	_, err := coreFor(p).Sync(context.Background(), sn, allChanged(sn))
	var pe *dataplane.PartialError
	if !errors.As(err, &pe) || len(pe.Errs) != 1 {
		t.Fatalf("Sync = %v, want one partial error", err)
	}
	msg := err.Error()
	for _, want := range []string{"3 Service ports have no listener", "RLIMIT_NOFILE 1029", "room for 5 listeners", "LimitNOFILE", "default/b5:p"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if opened != 5 || p.listeners != 5 {
		t.Fatalf("%d sockets opened, %d counted, want 5", opened, p.listeners)
	}
	sn2 := snap(state.NodeInfo{}, svcs[2:]...)
	if _, err := coreFor(p).Sync(context.Background(), sn2, allChanged(sn)); err == nil || !strings.Contains(err.Error(), "1 Service ports") {
		t.Fatalf("second Sync = %v, want the one Service left over refused", err)
	}
	if opened != 7 || p.listeners != 5 {
		t.Fatalf("%d sockets opened, %d counted after two Services left, want 7 and 5", opened, p.listeners)
	}
}

func TestListenerBudgetOfLimit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		nofile uint64
		want   int
	}{{0, 0}, {20000, 20000 - listenerReserve}, {1048576, 1048576 - listenerReserve}, {1024, 512}, {1, 1}} {
		if got := listenerBudget(c.nofile); got != c.want {
			t.Errorf("listenerBudget(%d) = %d, want %d", c.nofile, got, c.want)
		}
	}
}
