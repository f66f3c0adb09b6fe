//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	mobyipvs "github.com/moby/ipvs"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
	"kproxy.dev/kproxy/internal/testing/fakeipvs"
)

type fixture struct {
	t     *testing.T
	node  *fakeipvs.Node
	ipvs  *fakeipvs.IPVS
	links *fakeipvs.Links
	ipset *fakeipvs.IPSet
	ipt   *fakeipvs.Iptables
	ct    *fakeconntrack.Table
	p     *Proxier
	core  *dataplane.Core
	snap  *state.Snapshot
	gen   uint64
}

// newFixture builds a Proxier on fakes, driven through the proxier core (with the
// fixture's conntrack fake, and co's health server if given).
func newFixture(t *testing.T, o proxierOptions, co ...dataplane.CoreOptions) *fixture {
	n := fakeipvs.NewNode()
	f := &fixture{t: t, node: n, ipvs: n.IPVS, links: n.Links, ipset: n.IPSet, ipt: n.Iptables, ct: &fakeconntrack.Table{}}
	if o.GracefulInterval == 0 {
		o.GracefulInterval = -1 // tests call process themselves
	}
	f.p = newProxier(Kernel{
		IPVS: f.ipvs, Links: f.links, IPSet: f.ipset, Iptables: f.ipt, Sysctl: n.Sysctl,
		LocalAddrs: func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.168.7.2")}, nil },
	}, o)
	var opts dataplane.CoreOptions
	if len(co) > 0 {
		opts = co[0]
	}
	opts.Conntrack = f.ct
	f.core = dataplane.NewCore(f.p, opts)
	f.snap = &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}}
	return f
}

func spName(name string, proto v1.Protocol) state.ServicePortName {
	return state.ServicePortName{Namespace: "ns", Name: name, Port: "p", Protocol: proto}
}

func ep(addr string, weight int) state.Endpoint {
	ap := netip.MustParseAddrPort(addr)
	return state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true, Weight: weight}
}

// localEp is an endpoint on this node.
func localEp(addr string, weight int) state.Endpoint {
	e := ep(addr, weight)
	e.IsLocal = true
	return e
}

func clusterIP(name, ip string, port int32, proto v1.Protocol) *state.ServicePort {
	return &state.ServicePort{
		Name: spName(name, proto), Type: v1.ServiceTypeClusterIP, Protocol: proto,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)}, Port: port,
	}
}

// set replaces one ServicePort (nil removes it) in a new snapshot and returns the change.
func (f *fixture) set(name state.ServicePortName, sp *state.ServicePort, eps ...state.Endpoint) state.ChangeSet {
	next := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: f.snap.Node}
	for k, v := range f.snap.ServiceMap {
		next.ServiceMap[k] = v
	}
	for k, v := range f.snap.EndpointMap {
		next.EndpointMap[k] = v
	}
	if sp == nil {
		delete(next.ServiceMap, name)
		delete(next.EndpointMap, name)
	} else {
		next.ServiceMap[name] = sp
		next.EndpointMap[name] = eps
	}
	f.gen++
	next.Generation = f.gen
	f.snap = next
	return state.ChangeSet{Ports: map[state.ServicePortName]struct{}{name: {}}}
}

func (f *fixture) sync(c state.ChangeSet) {
	f.t.Helper()
	if _, err := f.core.Sync(context.Background(), f.snap, c); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

func key(addr string, proto uint16) vsKey {
	ap := netip.MustParseAddrPort(addr)
	return vsKey{ap.Addr(), ap.Port(), proto}
}

// weights returns the kernel's real servers of a virtual server.
func (f *fixture) weights(k vsKey) map[string]int {
	if f.vs(k) == nil {
		return nil
	}
	out := map[string]int{}
	for a, d := range f.ipvs.Destinations(fakeipvs.Key(k)) {
		out[a.String()] = d.Weight
		if d.ConnectionFlags != 0 {
			f.t.Errorf("real server %s of %s: forwarding %d, want masquerade (0)", a, k, d.ConnectionFlags)
		}
	}
	return out
}

// vs returns the kernel's virtual server, nil if absent.
func (f *fixture) vs(k vsKey) *mobyipvs.Service { return f.ipvs.Service(fakeipvs.Key(k)) }

// jumpRulesIn counts the jump rules present in one family's iptables.
func (f *fixture) jumpRulesIn(v6 bool) int {
	saved, _ := f.ipt.Save(context.Background(), v6)
	n := 0
	for _, j := range jumpRules {
		if strings.Contains(saved, j.saveLine()) {
			n++
		}
	}
	return n
}

func sameWeights(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var hour = time.Hour

// kubeProxySize sizes every set as kube-proxy does (ipset's defaults).
func kubeProxySize(string) setSize { return sizeFor(0) }
