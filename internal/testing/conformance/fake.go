package conformance

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/trace"
)

// The fake runner's node has the addresses test/e2e's namespaces give it: backend
// i at 10.244.(i+1).2 behind 10.244.(i+1).1, the external client at 192.168.6.2
// behind 192.168.6.1, the pod at 10.244.7.2 behind 10.244.7.1.
const (
	NodeName    = "node-a"
	TCPPort     = 8080
	UDPPort     = 5353
	externalIP  = "192.168.6.2"
	externalGW  = "192.168.6.1"
	podIP       = "10.244.7.2"
	podGW       = "10.244.7.1"
	ClusterCIDR = "10.244.0.0/16"
)

// BackendIP is backend i's address.
func BackendIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, byte(i + 1), 2}) }

// NodeAddrs are the node's own addresses.
func NodeAddrs() []netip.Addr {
	out := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr(externalGW)}
	for i := 1; i <= 7; i++ {
		out = append(out, netip.AddrFrom4([4]byte{10, 244, byte(i), 1}))
	}
	return out
}

// Snapshot holds every scenario's Services, as the Tracker would build them.
func Snapshot() *state.Snapshot {
	snap := &state.Snapshot{Services: map[state.ServicePortName]*state.ServicePort{},
		Endpoints: map[state.ServicePortName][]state.Endpoint{},
		Node:      state.NodeInfo{Name: NodeName}}
	for _, sc := range Scenarios() {
		for _, s := range sc.Services {
			sp, eps := s.model()
			snap.Services[sp.Name] = sp
			if s.Endpoints != nil {
				snap.Endpoints[sp.Name] = eps
			}
		}
	}
	return snap
}

func (s Service) model() (*state.ServicePort, []state.Endpoint) {
	proto, target := v1.ProtocolTCP, TCPPort
	if s.UDP {
		proto, target = v1.ProtocolUDP, UDPPort
	}
	sp := &state.ServicePort{
		Name:       state.ServicePortName{Namespace: "default", Name: s.Name, Port: "p", Protocol: proto},
		Type:       v1.ServiceTypeClusterIP,
		Protocol:   proto,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(s.ClusterIP)},
		Port:       int32(s.Port),
		NodePort:   int32(s.NodePort),
	}
	if s.NodePort != 0 {
		sp.Type = v1.ServiceTypeNodePort
	}
	if s.ExternalIP != "" {
		sp.ExternalIPs = []netip.Addr{netip.MustParseAddr(s.ExternalIP)}
	}
	if s.LoadBalancerIP != "" || s.HealthCheckNodePort != 0 {
		sp.Type = v1.ServiceTypeLoadBalancer
	}
	if s.LoadBalancerIP != "" {
		sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr(s.LoadBalancerIP)}
	}
	if s.SourceRangeExternal {
		sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix(externalIP + "/32")}
	}
	if s.HealthCheckNodePort != 0 {
		sp.HealthCheckNodePort, sp.ExternalPolicyLocal = int32(s.HealthCheckNodePort), true
	}
	sp.InternalPolicyLocal = s.InternalLocal
	if s.Affinity {
		sp.AffinityTimeout = state.DefaultAffinityTimeout
	}
	var eps []state.Endpoint
	for _, i := range s.Endpoints {
		e := state.Endpoint{IP: BackendIP(i), Port: int32(target), Ready: !s.Terminating, Serving: true,
			Terminating: s.Terminating, NodeName: "other-node", Weight: 1}
		if slices.Contains(s.Local, i) {
			e.NodeName, e.IsLocal = NodeName, true
		}
		eps = append(eps, e)
	}
	return sp, eps
}

// Tracer evaluates one packet against what a mode programmed into its fakes.
type Tracer func(p trace.Packet, o trace.Options) (*trace.Result, error)

// Difference is a probe a mode is known to answer differently from the table: a
// documented gap (docs/compatibility.md), not a pass. RunFake checks that it still
// differs, so that a fix shows up as a failure asking to remove it.
type Difference struct {
	Scenario string
	From     Where
	Addr     string
}

// RunFake checks every probe of the table against the rules a mode wrote into its
// stateful fakes for Snapshot(), by evaluating them with internal/trace.
func RunFake(t *testing.T, tr Tracer, known ...Difference) {
	t.Helper()
	opts := trace.Options{LocalAddrs: NodeAddrs(), LocalKnown: true}
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			for _, p := range sc.Probes {
				pkt := p.packet()
				r, err := tr(pkt, opts)
				if err != nil {
					t.Fatalf("trace from %s to %s: %v", p.From, p.Addr, err)
				}
				msg := p.Want.check(r, p.UDP)
				isKnown := slices.Contains(known, Difference{sc.Name, p.From, p.Addr})
				switch {
				case isKnown && msg == "":
					t.Errorf("from %s to %s: listed as a known difference but conforms now: remove it from the list", p.From, p.Addr)
				case isKnown:
					t.Logf("known difference, from %s to %s: %s", p.From, p.Addr, msg)
				case msg != "":
					var b strings.Builder
					trace.WriteText(&b, r)
					t.Errorf("from %s to %s:%d: %s\n%s", p.From, pkt.Dst, pkt.DPort, msg, b.String())
				}
			}
		})
	}
}

func (p Probe) packet() trace.Packet {
	addr := p.Addr
	if strings.HasPrefix(addr, "NODE:") {
		gw := externalGW
		if p.From == FromPod {
			gw = podGW
		}
		addr = gw + addr[4:]
	}
	ap := netip.MustParseAddrPort(addr)
	pkt := trace.Packet{Dst: ap.Addr(), DPort: ap.Port(), Proto: "tcp"}
	if p.UDP {
		pkt.Proto = "udp"
	}
	switch p.From {
	case FromPod:
		pkt.Src, pkt.InInterface = netip.MustParseAddr(podIP), "veth7"
	case FromNode:
		pkt.Src = netip.MustParseAddr(externalGW)
	case FromExternal:
		pkt.Src, pkt.InInterface = netip.MustParseAddr(externalIP), "veth6"
	}
	return pkt
}

// check says how r differs from the outcome, or "".
func (o Outcome) check(r *trace.Result, udp bool) string {
	switch {
	case o.Refused:
		if r.Verdict.Kind != "reject" {
			return fmt.Sprintf("verdict %s, want reject", r.Verdict.Kind)
		}
	case o.Dropped:
		if r.Verdict.Kind != "drop" {
			return fmt.Sprintf("verdict %s, want drop", r.Verdict.Kind)
		}
	default:
		port := TCPPort
		if udp {
			port = UDPPort
		}
		want := map[string]bool{}
		for _, i := range o.Reach {
			want[netip.AddrPortFrom(BackendIP(i), uint16(port)).String()] = true
		}
		got := map[string]bool{}
		for _, c := range r.Candidates {
			if c.Verdict != "dnat" || !want[c.Endpoint] || c.Probability <= 0 {
				return fmt.Sprintf("candidate %s %s (p=%.3f), want DNAT to one of %v", c.Verdict, c.Endpoint, c.Probability, keys(want))
			}
			got[c.Endpoint] = true
		}
		if len(got) != len(want) {
			return fmt.Sprintf("candidates %v, want %v", keys(got), keys(want))
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
