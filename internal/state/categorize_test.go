package state

import (
	"net/netip"
	"reflect"
	"testing"
)

// ep builds an Endpoint: name is the last octet, so "1" is 10.0.0.1.
type epSpec struct {
	last        byte
	ready       bool
	serving     bool
	terminating bool
	local       bool
	zones       []string
	nodes       []string
}

func (s epSpec) endpoint() Endpoint {
	e := Endpoint{
		IP: netip.AddrFrom4([4]byte{10, 0, 0, s.last}), Port: 80,
		Ready: s.ready, Serving: s.serving, Terminating: s.terminating,
		IsLocal: s.local, Weight: 1,
	}
	if s.zones != nil || s.nodes != nil {
		e.Hints = &Hints{Zones: s.zones, Nodes: s.nodes}
	}
	if s.local {
		e.NodeName = "node-a"
	}
	return e
}

func eps(specs ...epSpec) []Endpoint {
	out := make([]Endpoint, 0, len(specs))
	for _, s := range specs {
		out = append(out, s.endpoint())
	}
	return out
}

// Endpoint kinds used below.
func readyEP(last byte) epSpec     { return epSpec{last: last, ready: true, serving: true} }
func localReady(last byte) epSpec  { return epSpec{last: last, ready: true, serving: true, local: true} }
func terminating(last byte) epSpec { return epSpec{last: last, serving: true, terminating: true} }
func localTerm(last byte) epSpec {
	return epSpec{last: last, serving: true, terminating: true, local: true}
}
func notServing(last byte) epSpec        { return epSpec{last: last, terminating: true} }
func notReady(last byte) epSpec          { return epSpec{last: last} }
func zoned(s epSpec, z ...string) epSpec { s.zones = z; return s }

func names(list []Endpoint) []string {
	if len(list) == 0 {
		return nil
	}
	return endpointStrings(list)
}

func TestCategorizeEndpoints(t *testing.T) {
	clusterSvc := &ServicePort{}
	itpLocal := &ServicePort{InternalPolicyLocal: true}
	etpLocal := &ServicePort{NodePort: 30080, ExternalPolicyLocal: true}
	bothLocal := &ServicePort{NodePort: 30080, ExternalPolicyLocal: true, InternalPolicyLocal: true}
	etpLocalNotExternal := &ServicePort{ExternalPolicyLocal: true} // policy without a NodePort/LB: ignored
	nodeA := NodeInfo{Name: "node-a", Zone: "zone-a"}

	cases := []struct {
		name                    string
		sp                      *ServicePort
		eps                     []Endpoint
		node                    NodeInfo
		cluster, local, reached []string
		hasAny                  bool
	}{
		{
			name: "ready only", sp: clusterSvc, node: nodeA,
			eps:     eps(readyEP(1), notReady(2), terminating(3), localReady(4)),
			cluster: []string{"10.0.0.1:80", "10.0.0.4:80"}, reached: []string{"10.0.0.1:80", "10.0.0.4:80"}, hasAny: true,
		},
		{
			name: "fallback to serving terminating when none ready", sp: clusterSvc, node: nodeA,
			eps:     eps(notReady(1), terminating(2), notServing(3), localTerm(4)),
			cluster: []string{"10.0.0.2:80", "10.0.0.4:80"}, reached: []string{"10.0.0.2:80", "10.0.0.4:80"}, hasAny: true,
		},
		{
			name: "nothing usable", sp: clusterSvc, node: nodeA,
			eps:    eps(notReady(1), notServing(2)),
			hasAny: false,
		},
		{
			name: "no endpoints", sp: clusterSvc, node: nodeA,
			hasAny: false,
		},
		{
			name: "internalTrafficPolicy Local uses local ready only", sp: itpLocal, node: nodeA,
			eps:   eps(readyEP(1), localReady(2), localTerm(3)),
			local: []string{"10.0.0.2:80"}, reached: []string{"10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "internalTrafficPolicy Local without local endpoints drops (HasAny)", sp: itpLocal, node: nodeA,
			eps:    eps(readyEP(1)),
			hasAny: true,
		},
		{
			name: "internalTrafficPolicy Local falls back to local terminating", sp: itpLocal, node: nodeA,
			eps:   eps(readyEP(1), localTerm(2), terminating(3)),
			local: []string{"10.0.0.2:80"}, reached: []string{"10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "externalTrafficPolicy Local with local endpoints", sp: etpLocal, node: nodeA,
			eps:     eps(readyEP(1), localReady(2)),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, local: []string{"10.0.0.2:80"},
			reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "externalTrafficPolicy Local without local endpoints", sp: etpLocal, node: nodeA,
			eps:     eps(readyEP(1), readyEP(3)),
			cluster: []string{"10.0.0.1:80", "10.0.0.3:80"},
			reached: []string{"10.0.0.1:80", "10.0.0.3:80"}, hasAny: true,
		},
		{
			name: "externalTrafficPolicy Local, only a terminating local endpoint", sp: etpLocal, node: nodeA,
			eps:     eps(readyEP(1), localTerm(2)),
			cluster: []string{"10.0.0.1:80"}, local: []string{"10.0.0.2:80"},
			reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			// Externally reachable: kube-proxy keeps the cluster endpoints for the
			// short circuit of pods and the node reaching an external address.
			name: "both policies Local", sp: bothLocal, node: nodeA,
			eps:     eps(readyEP(1), localReady(2)),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, local: []string{"10.0.0.2:80"},
			reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "externalTrafficPolicy Local on an internal-only port is ignored", sp: etpLocalNotExternal, node: nodeA,
			eps:     eps(readyEP(1), localReady(2)),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "zone hints used when all ready endpoints have them and one matches", sp: clusterSvc, node: nodeA,
			eps:     eps(zoned(readyEP(1), "zone-a"), zoned(readyEP(2), "zone-b"), zoned(readyEP(3), "zone-b", "zone-a"), notReady(4)),
			cluster: []string{"10.0.0.1:80", "10.0.0.3:80"}, reached: []string{"10.0.0.1:80", "10.0.0.3:80"}, hasAny: true,
		},
		{
			name: "zone hints ignored when one ready endpoint has none", sp: clusterSvc, node: nodeA,
			eps:     eps(zoned(readyEP(1), "zone-a"), readyEP(2)),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "zone hints ignored when none names this zone", sp: clusterSvc, node: nodeA,
			eps:     eps(zoned(readyEP(1), "zone-b"), zoned(readyEP(2), "zone-c")),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "zone hints ignored when the node has no zone", sp: clusterSvc, node: NodeInfo{Name: "node-a"},
			eps:     eps(zoned(readyEP(1), "zone-a"), zoned(readyEP(2), "zone-b")),
			cluster: []string{"10.0.0.1:80", "10.0.0.2:80"}, reached: []string{"10.0.0.1:80", "10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "node hints win over zone hints", sp: clusterSvc, node: nodeA,
			eps: eps(
				epSpec{last: 1, ready: true, serving: true, zones: []string{"zone-a"}, nodes: []string{"node-b"}},
				epSpec{last: 2, ready: true, serving: true, zones: []string{"zone-a"}, nodes: []string{"node-a"}},
			),
			cluster: []string{"10.0.0.2:80"}, reached: []string{"10.0.0.2:80"}, hasAny: true,
		},
		{
			name: "topology with externalTrafficPolicy Local reaches both sets", sp: etpLocal, node: nodeA,
			eps:     eps(zoned(readyEP(1), "zone-a"), zoned(readyEP(2), "zone-b"), zoned(localReady(3), "zone-b")),
			cluster: []string{"10.0.0.1:80"}, local: []string{"10.0.0.3:80"},
			reached: []string{"10.0.0.1:80", "10.0.0.3:80"}, hasAny: true,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := CategorizeEndpoints(c.sp, c.eps, c.node)
			check := func(what string, got []Endpoint, want []string) {
				t.Helper()
				if g := names(got); !reflect.DeepEqual(g, want) {
					t.Errorf("%s = %v, want %v", what, g, want)
				}
			}
			check("Cluster", got.Cluster, c.cluster)
			check("Local", got.Local, c.local)
			check("AllReachable", got.AllReachable, c.reached)
			if got.HasAny != c.hasAny {
				t.Errorf("HasAny = %v, want %v", got.HasAny, c.hasAny)
			}
		})
	}
}

func TestSnapshotCategorize(t *testing.T) {
	n := portName("ns", "web", "http")
	snap := &Snapshot{
		ServiceMap:  map[ServicePortName]*ServicePort{n: {Name: n}},
		EndpointMap: map[ServicePortName][]Endpoint{n: eps(readyEP(1))},
	}
	if got := snap.Categorize(n); len(got.Cluster) != 1 || !got.HasAny {
		t.Fatalf("categorize %+v", got)
	}
	if got := snap.Categorize(portName("ns", "missing", "")); got.HasAny || got.Cluster != nil {
		t.Fatalf("missing port %+v", got)
	}
}

func TestFilterEndpointsSharesOnlyWhenAllKept(t *testing.T) {
	in := eps(readyEP(1), terminating(2), readyEP(3))
	all := FilterEndpoints(in, func(*Endpoint) bool { return true })
	if len(all) != 3 || &all[0] != &in[0] || cap(all) != 3 {
		t.Errorf("all kept: want in itself, capped at its length; got len %d cap %d", len(all), cap(all))
	}
	ready := FilterEndpoints(in, func(e *Endpoint) bool { return e.Ready })
	if got := names(ready); !reflect.DeepEqual(got, []string{"10.0.0.1:80", "10.0.0.3:80"}) {
		t.Errorf("ready: %v", got)
	}
	ready[0].Port = 1
	if in[0].Port != 80 {
		t.Error("a filtered copy shares the input's array")
	}
	if none := FilterEndpoints(in, func(*Endpoint) bool { return false }); none != nil {
		t.Errorf("none kept: %v, want nil", none)
	}
}
