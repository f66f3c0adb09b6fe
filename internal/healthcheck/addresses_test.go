package healthcheck

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

// recordListen opens real listeners on 127.0.0.1 but records the address asked for.
type recordListen struct {
	mu    sync.Mutex
	asked []string
}

func (r *recordListen) listen(network, addr string) (net.Listener, error) {
	r.mu.Lock()
	r.asked = append(r.asked, addr)
	r.mu.Unlock()
	return net.Listen(network, "127.0.0.1:0")
}

func (r *recordListen) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.asked
	r.asked = nil
	slices.Sort(out)
	return out
}

func hcSnapshot(nodeAddrs ...string) *state.Snapshot {
	n := state.ServicePortName{Namespace: "ns", Name: "lb", Port: "p"}
	snap := &state.Snapshot{
		ServiceMap:  map[state.ServicePortName]*state.ServicePort{n: {Name: n, HealthCheckNodePort: 32000, ExternalPolicyLocal: true}},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{},
	}
	for _, a := range nodeAddrs {
		snap.Node.Addresses = append(snap.Node.Addresses, netip.MustParseAddr(a))
	}
	return snap
}

// TestListenOnlyOnNodePortAddresses: health-check node ports bind the addresses
// nodePortAddresses selects, every address when it selects all, and move when the
// Node's addresses change.
func TestListenOnlyOnNodePortAddresses(t *testing.T) {
	for _, c := range []struct {
		name       string
		list, dflt []string
		want       []string
	}{
		{"unset, iptables default all", nil, nil, []string{":32000"}},
		{"all keyword", []string{"all"}, nil, []string{":32000"}},
		{"unset, nftables default primary", nil, []string{"primary"}, []string{"10.0.0.7:32000"}},
		{"CIDR", []string{"203.0.113.0/24"}, nil, []string{"203.0.113.5:32000"}},
		{"primary and CIDR", []string{"primary", "203.0.113.0/24"}, nil, []string{"10.0.0.7:32000", "203.0.113.5:32000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &recordListen{}
			s := New(Options{Listen: r.listen, NodePortAddresses: c.list, DefaultNodePortAddresses: c.dflt})
			defer s.Close()
			if err := s.Refresh(nil, hcSnapshot("10.0.0.7", "203.0.113.5"), nil, true); err != nil {
				t.Fatal(err)
			}
			if got := r.take(); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("listened on %v, want %v", got, c.want)
			}
		})
	}
	t.Run("node address change moves the port", func(t *testing.T) {
		r := &recordListen{}
		s := New(Options{Listen: r.listen, NodePortAddresses: []string{"primary"}})
		defer s.Close()
		prev := hcSnapshot("10.0.0.7")
		if err := s.Refresh(nil, prev, nil, true); err != nil {
			t.Fatal(err)
		}
		r.take()
		if err := s.Refresh(prev, prev, nil, false); err != nil || len(r.take()) != 0 {
			t.Fatalf("unchanged node reopened ports (err %v)", err)
		}
		cur := hcSnapshot("10.0.0.8")
		if err := s.Refresh(prev, cur, nil, false); err != nil {
			t.Fatal(err)
		}
		if got := r.take(); fmt.Sprint(got) != "[10.0.0.8:32000]" {
			t.Fatalf("after the node address changed, listened on %v", got)
		}
	})
	t.Run("bad entry names it", func(t *testing.T) {
		s := New(Options{NodePortAddresses: []string{"primary", "bogus"}})
		err := s.Refresh(nil, hcSnapshot("10.0.0.7"), nil, true)
		if err == nil || !contains(err.Error(), "nodePortAddresses[1]") {
			t.Fatalf("err = %v", err)
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
