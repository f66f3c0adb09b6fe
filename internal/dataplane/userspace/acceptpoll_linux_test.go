package userspace

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// TestIdleListenersHoldNoGoroutine syncs 200 Services with real listeners:
// they add a handful of goroutines, not one each; every Service answers, the
// accept goroutines the connections started end after acceptLinger, and the
// Services answer again (the listeners were armed again). Removing the
// Services empties the poller. Not parallel: it counts the process's
// goroutines, which the parallel tests (paused while it runs) do not change.
func TestIdleListenersHoldNoGoroutine(t *testing.T) {
	const n = 200
	back := startTCPBackend(t, "A")
	p, _ := testProxier(t, nil)
	base := runtime.NumGoroutine()
	svcs := make([]*svc, n)
	for i := range svcs {
		ip := randLoopback()
		svcs[i] = newSvc(fmt.Sprintf("idle-%d", i), v1.ProtocolTCP, ip, freePort(t, "tcp", ip), back)
	}
	sn := snap(state.NodeInfo{}, svcs...)
	mustSync(t, p, sn, allChanged(sn))
	if got := runtime.NumGoroutine() - base; got > 10 {
		t.Fatalf("%d listeners added %d goroutines, want a few", n, got)
	}
	if got := p.accepts.len(); got != n {
		t.Fatalf("poller watches %d listeners, want %d", got, n)
	}
	for round := 0; round < 2; round++ {
		for _, s := range svcs {
			if got := names(t, netip.Addr{}, s.addr(), 1); got[0] != "A" {
				t.Fatalf("round %d: %s answered %q, want A", round, s.addr(), got[0])
			}
		}
		eventually(t, "the accept goroutines to end once idle", func() bool {
			return runtime.NumGoroutine()-base <= 10
		})
	}
	empty := snap(state.NodeInfo{})
	mustSync(t, p, empty, allChanged(sn))
	if got := p.accepts.len(); got != 0 {
		t.Fatalf("poller still watches %d listeners after their Services left", got)
	}
}
