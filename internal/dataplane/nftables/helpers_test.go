package nftables

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/golden"
)

// spec describes a test ServicePort compactly.
type spec struct {
	name       string
	proto      v1.Protocol
	clusterIP  string
	port       int32
	nodePort   int32
	external   []string
	lbIPs      []string
	ranges     []string
	eTPLocal   bool
	iTPLocal   bool
	affinity   time.Duration
	scheduler  string
	schedFlags []string
}

func (s spec) portName() state.ServicePortName {
	p := s.proto
	if p == "" {
		p = v1.ProtocolTCP
	}
	return state.ServicePortName{Namespace: "ns", Name: s.name, Port: "p", Protocol: p}
}

func (s spec) servicePort() *state.ServicePort {
	n := s.portName()
	sp := &state.ServicePort{Name: n, Protocol: n.Protocol, Port: s.port, NodePort: s.nodePort,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(s.clusterIP)}, ExternalPolicyLocal: s.eTPLocal,
		InternalPolicyLocal: s.iTPLocal, AffinityTimeout: s.affinity, Scheduler: s.scheduler,
		SchedulerFlags: s.schedFlags, Type: v1.ServiceTypeClusterIP}
	for _, a := range s.external {
		sp.ExternalIPs = append(sp.ExternalIPs, netip.MustParseAddr(a))
	}
	for _, a := range s.lbIPs {
		sp.LoadBalancerIPs = append(sp.LoadBalancerIPs, netip.MustParseAddr(a))
		sp.Type = v1.ServiceTypeLoadBalancer
	}
	for _, r := range s.ranges {
		sp.LoadBalancerSourceRanges = append(sp.LoadBalancerSourceRanges, netip.MustParsePrefix(r))
	}
	if s.nodePort != 0 && sp.Type == v1.ServiceTypeClusterIP {
		sp.Type = v1.ServiceTypeNodePort
	}
	return sp
}

// ep is a ready endpoint; "local" in flags makes it local, "term" terminating, "w3"
// gives it weight 3.
func ep(addr string, port int32, flags ...string) state.Endpoint {
	e := state.Endpoint{IP: netip.MustParseAddr(addr), Port: port, Ready: true, Serving: true, Weight: 1}
	for _, f := range flags {
		switch {
		case f == "local":
			e.IsLocal = true
		case f == "term":
			e.Ready, e.Terminating = false, true
		case strings.HasPrefix(f, "w"):
			e.Weight = int(f[1] - '0')
		}
	}
	return e
}

func snapshotOf(specs map[*spec][]state.Endpoint) *state.Snapshot {
	snap := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: state.NodeInfo{Name: "node-a"}}
	for s, eps := range specs {
		n := s.portName()
		snap.ServiceMap[n] = s.servicePort()
		snap.EndpointMap[n] = eps
	}
	return snap
}

// withEndpoints is a copy of snap with the endpoints of the ports in eps replaced:
// a synced snapshot is never modified (the table syncs render their applied
// Services again from it, as from a Tracker's).
func withEndpoints(snap *state.Snapshot, eps map[state.ServicePortName][]state.Endpoint) *state.Snapshot {
	next := *snap
	next.EndpointMap = maps.Clone(snap.EndpointMap)
	maps.Copy(next.EndpointMap, eps)
	return &next
}

func testOptions(f family) renderOptions {
	cidr := netip.MustParsePrefix("10.244.0.0/16")
	if f.ipv6 {
		cidr = netip.MustParsePrefix("fd00:244::/64")
	}
	return renderOptions{fam: f, masqMark: 0x4000, clusterCIDRs: []netip.Prefix{cidr}, defaultScheduler: schedRandom}
}

// checkGolden compares got with testdata/NAME.golden (or rewrites it with -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name+".golden", []byte(got))
}

// bigSnapshot has n ClusterIP Services with e endpoints each, as `kproxy bench`
// builds, every address distinct (up to a million Services and 700,000 endpoints).
func bigSnapshot(n, e int) *state.Snapshot {
	specs := map[*spec][]state.Endpoint{}
	for i := range n {
		s := &spec{name: fmt.Sprintf("svc-%d", i), clusterIP: netip.AddrFrom4([4]byte{10, byte(96 + i>>16), byte(i >> 8), byte(i)}).String(), port: 80}
		var eps []state.Endpoint
		for j := range e {
			k := i*e + j
			eps = append(eps, ep(netip.AddrFrom4([4]byte{10, byte(244 + k>>16), byte(k >> 8), byte(k)}).String(), 8080))
		}
		specs[s] = eps
	}
	return snapshotOf(specs)
}
