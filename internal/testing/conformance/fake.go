package conformance

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
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

// Addrs places the table on a node: each backend's address and the external
// client's (loadBalancerSourceRanges name it).
type Addrs struct {
	Backend  func(i int) netip.Addr
	External netip.Addr
}

// Snapshot holds every scenario's Services on the fake runner's node.
func Snapshot() *state.Snapshot {
	return SnapshotFor(Addrs{Backend: BackendIP, External: netip.MustParseAddr(externalIP)})
}

// SnapshotFor holds every scenario's Services, as the Tracker would build them,
// with the given addresses.
func SnapshotFor(a Addrs) *state.Snapshot { return SnapshotOf(Scenarios(), a) }

// SnapshotOf holds the Services of scs (Scenarios, MasqueradeAllScenarios), as the
// Tracker would build them, with the given addresses.
func SnapshotOf(scs []Scenario, a Addrs) *state.Snapshot {
	snap := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{},
		Node:        state.NodeInfo{Name: NodeName}}
	for _, sc := range scs {
		for _, s := range sc.Services {
			sp, eps := s.model(a)
			snap.ServiceMap[sp.Name] = sp
			if s.Endpoints != nil {
				snap.EndpointMap[sp.Name] = eps
			}
		}
	}
	return snap
}

func (s Service) model(a Addrs) (*state.ServicePort, []state.Endpoint) {
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
		sp.LoadBalancerSourceRanges = []netip.Prefix{netip.PrefixFrom(a.External, 32)}
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
		e := state.Endpoint{IP: a.Backend(i), Port: int32(target), Ready: !s.Terminating, Serving: true,
			Terminating: s.Terminating, NodeName: "other-node", Weight: 1}
		if slices.Contains(s.Local, i) {
			e.NodeName, e.IsLocal = NodeName, true
		}
		eps = append(eps, e)
	}
	return sp, eps
}

// KnownDifferences are, by mode, the probes a mode is known to answer
// differently from the table (docs/compatibility.md). Both runners check that
// each still differs. None is known now: ipvs, the last mode listed, drops and
// short-circuits Local policies without a local endpoint as the table says
// (internal/dataplane/ipvs/policy.go).
var KnownDifferences = map[string][]Difference{}

// Tracer evaluates one packet against what a mode programmed into its fakes.
type Tracer func(p trace.Packet, o trace.Options) (*trace.Result, error)

// FakeMode is one kernel mode on its stateful fakes, driven through the proxier
// core, for RunFake.
type FakeMode struct {
	// Sync syncs the mode's core (conntrack cleanup goes to Conntrack).
	Sync func(snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error)
	// Trace evaluates a packet against what the fakes hold now.
	Trace     Tracer
	Conntrack *fakeconntrack.Table
	// Known are the mode's known differences (KnownDifferences).
	Known []Difference
}

// RunFake runs the whole table on a mode's fakes: every probe of every static
// scenario (RunProbes), the no-local-endpoint counts, then the scenarios that
// change something: a node zone change under PreferClose, a UDP port gaining its
// first endpoint and a UDP endpoint replaced (conntrack cleaned), a Service
// deleted.
func RunFake(t *testing.T, m FakeMode) {
	t.Helper()
	snap := Snapshot()
	st, err := m.Sync(snap, allChanged(snap))
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	RunProbes(t, m.Trace, m.Known...)
	t.Run("no-local-endpoint counts", func(t *testing.T) {
		// itp-none (internal) and etp-none (external).
		if st.NoLocalEndpoints["internal"] != 1 || st.NoLocalEndpoints["external"] != 1 {
			t.Errorf("no-local counts %v, want internal=1 external=1", st.NoLocalEndpoints)
		}
	})
	t.Run("hairpin", func(t *testing.T) { hairpin(t, m) })
	t.Run("node zone label change under PreferClose", func(t *testing.T) { zoneChange(t, m, snap) })
	t.Run("UDP port gaining its first endpoint", func(t *testing.T) { udpGains(t, m, snap) })
	t.Run("UDP endpoint replaced", func(t *testing.T) { udpReplaced(t, m, snap) })
	t.Run("Service deleted", func(t *testing.T) { deleted(t, m, snap) })
}

// RunFakeMasqueradeAll runs MasqueradeAllScenarios on a mode's fakes whose
// configuration sets masqueradeAll (a proxier of its own: the setting is
// node-wide).
func RunFakeMasqueradeAll(t *testing.T, m FakeMode) {
	t.Helper()
	snap := SnapshotOf(MasqueradeAllScenarios(), Addrs{Backend: BackendIP, External: netip.MustParseAddr(externalIP)})
	if _, err := m.Sync(snap, allChanged(snap)); err != nil {
		t.Fatalf("sync: %v", err)
	}
	RunProbesOf(t, m.Trace, MasqueradeAllScenarios(), m.Known...)
}

func allChanged(snap *state.Snapshot) state.ChangeSet {
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for n := range snap.ServiceMap {
		cs.Ports[n] = struct{}{}
	}
	return cs
}

// with returns a copy of snap with one Service put (eps nil: removed).
func with(snap *state.Snapshot, s Service, remove bool) (*state.Snapshot, state.ChangeSet) {
	next := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: snap.Node, Generation: snap.Generation + 1}
	for k, v := range snap.ServiceMap {
		next.ServiceMap[k] = v
	}
	for k, v := range snap.EndpointMap {
		next.EndpointMap[k] = v
	}
	sp, eps := s.model(Addrs{Backend: BackendIP, External: netip.MustParseAddr(externalIP)})
	if remove {
		delete(next.ServiceMap, sp.Name)
		delete(next.EndpointMap, sp.Name)
	} else {
		next.ServiceMap[sp.Name], next.EndpointMap[sp.Name] = sp, eps
	}
	return next, state.ChangeSet{Ports: map[state.ServicePortName]struct{}{sp.Name: {}}}
}

func mustSync(t *testing.T, m FakeMode, snap *state.Snapshot, cs state.ChangeSet) {
	t.Helper()
	if _, err := m.Sync(snap, cs); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// expect checks one packet from the pod.
func expect(t *testing.T, m FakeMode, addr string, udp bool, want Outcome) {
	t.Helper()
	p := Probe{From: FromPod, Addr: addr, UDP: udp, Want: want}
	r, err := m.Trace(p.packet(), trace.Options{LocalAddrs: NodeAddrs(), LocalKnown: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg := want.check(r, udp, SeenUnset); msg != "" {
		t.Errorf("from pod to %s: %s", addr, msg)
	}
}

// hairpin: an endpoint on this node (backend 0 of the Service "etp", whose
// endpoints are 0 and 2) reaching its own Service is masqueraded when the
// connection comes back to itself (it would otherwise answer itself directly),
// and keeps its address towards the other endpoints, as in kube-proxy. Only a
// local endpoint can hairpin: another node's pods use their own node's rules.
func hairpin(t *testing.T, m FakeMode) {
	pkt := trace.Packet{Src: BackendIP(0), InInterface: "veth1", Dst: netip.MustParseAddr("10.96.1.5"), DPort: 80, Proto: "tcp"}
	r, err := m.Trace(pkt, trace.Options{LocalAddrs: NodeAddrs(), LocalKnown: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg := (Outcome{Reach: []int{0, 2}}).check(r, false, SeenUnset); msg != "" {
		t.Fatal(msg)
	}
	self := netip.AddrPortFrom(BackendIP(0), TCPPort).String()
	for _, c := range r.Candidates {
		want := SeenClient
		if c.Endpoint == self {
			want = SeenNode
		}
		if got := seenOf(c); got != want {
			t.Errorf("endpoint %s sees %s of the endpoint %s, want %s", c.Endpoint, got, BackendIP(0), want)
		}
	}
}

func zoneChange(t *testing.T, m FakeMode, snap *state.Snapshot) {
	s := Service{Name: "zoned", ClusterIP: "10.96.1.23", Port: 80, Endpoints: []int{2, 3}}
	snap, cs := with(snap, s, false)
	for i, e := range snap.EndpointMap[portName(s)] {
		e.Hints = &state.Hints{Zones: []string{[]string{"z1", "z2"}[i]}}
		snap.EndpointMap[portName(s)][i] = e
	}
	snap.Node.Zone = "z1"
	mustSync(t, m, snap, cs)
	expect(t, m, "10.96.1.23:80", false, Outcome{Reach: []int{2}})
	next := *snap
	next.Node.Zone = "z2"
	mustSync(t, m, &next, state.ChangeSet{NodeChanged: true})
	expect(t, m, "10.96.1.23:80", false, Outcome{Reach: []int{3}})
}

func portName(s Service) state.ServicePortName {
	sp, _ := s.model(Addrs{Backend: BackendIP})
	return sp.Name
}

func udpGains(t *testing.T, m FakeMode, snap *state.Snapshot) {
	s := Service{Name: "gain", ClusterIP: "10.96.1.21", Port: 53, UDP: true, Endpoints: []int{}}
	snap, cs := with(snap, s, false)
	mustSync(t, m, snap, cs)
	// Rejected while the port had no endpoint: recorded un-NATed.
	stuck := fakeconntrack.UDP(podIP+":40121", "10.96.1.21:53", "10.96.1.21:53")
	m.Conntrack.Add(stuck)
	s.Endpoints = []int{2}
	snap, cs = with(snap, s, false)
	mustSync(t, m, snap, cs)
	if m.Conntrack.Has(stuck) {
		t.Errorf("the flow recorded while the port had no endpoint survived: %v", stuck)
	}
	expect(t, m, "10.96.1.21:53", true, Outcome{Reach: []int{2}})
}

func udpReplaced(t *testing.T, m FakeMode, snap *state.Snapshot) {
	s := Service{Name: "repl", ClusterIP: "10.96.1.22", Port: 53, UDP: true, Endpoints: []int{2}}
	snap, cs := with(snap, s, false)
	mustSync(t, m, snap, cs)
	old := fakeconntrack.UDP(podIP+":40122", "10.96.1.22:53", netip.AddrPortFrom(BackendIP(2), UDPPort).String())
	other := fakeconntrack.UDP(podIP+":40123", "10.96.1.1:53", netip.AddrPortFrom(BackendIP(2), UDPPort).String())
	m.Conntrack.Add(old, other)
	s.Endpoints = []int{3}
	snap, cs = with(snap, s, false)
	mustSync(t, m, snap, cs)
	if m.Conntrack.Has(old) {
		t.Errorf("the flow to the replaced endpoint survived: %v", old)
	}
	if !m.Conntrack.Has(other) {
		t.Errorf("a flow of another Service to the same backend was deleted: %v", other)
	}
	expect(t, m, "10.96.1.22:53", true, Outcome{Reach: []int{3}})
}

func deleted(t *testing.T, m FakeMode, snap *state.Snapshot) {
	s := Service{Name: "gone", ClusterIP: "10.96.1.24", Port: 80, Endpoints: []int{2, 3, 4}}
	snap, cs := with(snap, s, false)
	mustSync(t, m, snap, cs)
	expect(t, m, "10.96.1.24:80", false, Outcome{Reach: reachAll})
	snap, cs = with(snap, s, true)
	mustSync(t, m, snap, cs)
	r, err := m.Trace(Probe{From: FromPod, Addr: "10.96.1.24:80"}.packet(), trace.Options{LocalAddrs: NodeAddrs(), LocalKnown: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Verdict.Kind == "dnat" {
		t.Errorf("a deleted Service is still DNATed: %s", r.Verdict.Summary)
	}
}

// Difference is a probe a mode is known to answer differently from the table: a
// documented gap (docs/compatibility.md), not a pass. RunFake checks that it still
// differs, so that a fix shows up as a failure asking to remove it.
type Difference struct {
	Scenario string
	From     Where
	Addr     string
}

// RunProbes checks every probe of the table against the rules a mode wrote into
// its stateful fakes for Snapshot(), by evaluating them with internal/trace.
func RunProbes(t *testing.T, tr Tracer, known ...Difference) {
	t.Helper()
	RunProbesOf(t, tr, Scenarios(), known...)
}

// RunProbesOf is RunProbes for the scenarios scs (the fakes hold SnapshotOf(scs)).
func RunProbesOf(t *testing.T, tr Tracer, scs []Scenario, known ...Difference) {
	t.Helper()
	opts := trace.Options{LocalAddrs: NodeAddrs(), LocalKnown: true}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			for _, p := range sc.Probes {
				pkt := p.packet()
				r, err := tr(pkt, opts)
				if err != nil {
					t.Fatalf("trace from %s to %s: %v", p.From, p.Addr, err)
				}
				msg := p.WantIn(r.Mode).check(r, p.UDP, p.WantSeen(r.Mode))
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

// check says how r differs from the outcome, or "": the candidates, and the
// client address each one's endpoint sees (seen; SeenUnset: not checked), which
// trace derives from the masquerade or SNAT on its path.
func (o Outcome) check(r *trace.Result, udp bool, seen Seen) string {
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
			if got := seenOf(c); seen != SeenUnset && got != seen {
				return fmt.Sprintf("endpoint %s sees %s, want %s", c.Endpoint, got, seen)
			}
			got[c.Endpoint] = true
		}
		if len(got) != len(want) {
			return fmt.Sprintf("candidates %v, want %v", keys(got), keys(want))
		}
	}
	return ""
}

// seenOf is the client address a candidate's endpoint sees.
func seenOf(c trace.Candidate) Seen {
	if c.Masquerade {
		return SeenNode
	}
	return SeenClient
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
