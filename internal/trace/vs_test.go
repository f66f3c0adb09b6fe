package trace

import (
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
)

// The endpoint of a userspace relay sees the node (the relay connects from it);
// the endpoint of an ebpf socket-LB translation sees the client itself (its
// socket is connected to the endpoint, no NAT).
func TestVirtualServicesMasqueradeByMode(t *testing.T) {
	vss := []dataplane.VirtualService{{Protocol: "TCP", Address: "10.96.0.10:80", Scheduler: "random",
		RealServers: []dataplane.RealServer{{Address: "10.244.1.2:8080", Weight: 1}}}}
	p := Packet{Src: netip.MustParseAddr("10.244.7.2"), Dst: netip.MustParseAddr("10.96.0.10"), DPort: 80, Proto: "tcp"}
	for mode, want := range map[string]bool{"userspace": true, "ebpf": false} {
		r := TraceVirtualServices(mode, vss, p, Options{})
		if len(r.Candidates) != 1 || r.Candidates[0].Endpoint != "10.244.1.2:8080" {
			t.Fatalf("%s: candidates %+v, want the one real server", mode, r.Candidates)
		}
		if r.Masquerade != want || r.Candidates[0].Masquerade != want {
			t.Errorf("%s: masquerade %v (candidate %v), want %v", mode, r.Masquerade, r.Candidates[0].Masquerade, want)
		}
	}
}
