package ebpf

import (
	"net/netip"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/state"
)

// kernelModel applies Ops to plain maps, to check Plan against what a kernel
// would hold.
type kernelModel struct {
	svcs map[svcKey]svcValue
	bes  map[backendKey]backendValue
}

func (m *kernelModel) apply(o *Ops) {
	for i, k := range o.BackendKeys {
		m.bes[k] = o.BackendVals[i]
	}
	for i, k := range o.ServiceKeys {
		m.svcs[k] = o.ServiceVals[i]
	}
	for _, k := range o.DelServices {
		delete(m.svcs, k)
	}
	for _, k := range o.DelBackends {
		delete(m.bes, k)
	}
}

// check verifies that the model holds exactly d.
func (m *kernelModel) check(t *testing.T, d Desired) {
	t.Helper()
	if len(m.svcs) != len(d) {
		t.Fatalf("%d services in the maps, want %d", len(m.svcs), len(d))
	}
	nb := 0
	for k, f := range d {
		v, ok := m.svcs[k]
		if !ok || v.Count != uint32(len(f.Slots)) {
			t.Fatalf("service %s: %+v", k.addrPort(), v)
		}
		for i, s := range f.Slots {
			if m.bes[backendKey{v.ID, uint32(i)}] != s {
				t.Fatalf("service %s slot %d wrong", k.addrPort(), i)
			}
		}
		nb += len(f.Slots)
	}
	if len(m.bes) != nb {
		t.Fatalf("%d backend entries, want %d (leftovers)", len(m.bes), nb)
	}
}

func manyServices(n int, eps func(i int) []state.Endpoint) *state.Snapshot {
	s := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}}
	for i := range n {
		name := port("ns", "svc"+itoa(i))
		ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		s.ServiceMap[name] = &state.ServicePort{Name: name, Type: "ClusterIP", Protocol: name.Protocol,
			ClusterIPs: []netip.Addr{ip}, Port: 80}
		s.EndpointMap[name] = eps(i)
	}
	return s
}

func itoa(i int) string {
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}).String()
}

func threeEps(i int) []state.Endpoint {
	var out []state.Endpoint
	for j := range 3 {
		out = append(out, ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(j + 1), byte(i >> 8), byte(i)}), 8080).String(), 1))
	}
	return out
}

func TestTablePlanFullThenOneServiceChange(t *testing.T) {
	snap := manyServices(50, threeEps)
	tb, km := NewTable(), &kernelModel{svcs: map[svcKey]svcValue{}, bes: map[backendKey]backendValue{}}
	d, _ := Render(snap, RenderOptions{})
	ops, errs := tb.Plan(d, Scope{All: true})
	if len(errs) > 0 || ops.Len() != 200 {
		t.Fatalf("cold load wrote %d entries (want 50 services + 150 backends), errs %v", ops.Len(), errs)
	}
	km.apply(ops)
	tb.Commit(ops)
	km.check(t, d)

	// Same snapshot: nothing to write.
	if ops, _ := tb.Plan(d, Scope{All: true}); ops.Len() != 0 {
		t.Errorf("resync of an unchanged snapshot wrote %d entries", ops.Len())
	}

	// One Service loses an endpoint: one service entry and one backend slot.
	name := port("ns", "svc"+itoa(7))
	snap.EndpointMap[name] = snap.EndpointMap[name][:2]
	want, _ := RenderPorts(snap, []state.ServicePortName{name}, RenderOptions{})
	ops, _ = tb.Plan(want, Scope{Ports: map[state.ServicePortName]struct{}{name: {}}})
	if len(ops.ServiceKeys) != 1 || len(ops.DelBackends) != 1 || len(ops.BackendKeys) != 0 || ops.Len() != 2 {
		t.Errorf("one-endpoint removal: %+v", ops)
	}
	km.apply(ops)
	gone := tb.Commit(ops)
	if len(gone) != 1 || gone[0] != netip.MustParseAddrPort("10.3.0.7:8080") {
		t.Errorf("gone backends %v", gone)
	}
	d[want[newSvcKey(netip.MustParseAddr("10.96.0.7"), 80, protoTCP)].Key] = want[newSvcKey(netip.MustParseAddr("10.96.0.7"), 80, protoTCP)]
	km.check(t, d)

	// A removed Service frees its entries and its id is reused.
	delete(snap.ServiceMap, name)
	delete(snap.EndpointMap, name)
	want, _ = RenderPorts(snap, []state.ServicePortName{name}, RenderOptions{})
	ops, _ = tb.Plan(want, Scope{Ports: map[state.ServicePortName]struct{}{name: {}}})
	km.apply(ops)
	tb.Commit(ops)
	delete(d, newSvcKey(netip.MustParseAddr("10.96.0.7"), 80, protoTCP))
	km.check(t, d)
	if len(tb.free) != 1 {
		t.Errorf("free ids %v, want the removed Service's", tb.free)
	}
}

func TestTableAdoptThenFullSyncRepairs(t *testing.T) {
	snap := manyServices(10, threeEps)
	d, _ := Render(snap, RenderOptions{})
	km := &kernelModel{svcs: map[svcKey]svcValue{}, bes: map[backendKey]backendValue{}}
	first := NewTable()
	ops, _ := first.Plan(d, Scope{All: true})
	km.apply(ops)
	// Leftovers of a crash: an orphan backend entry and a stale slot.
	km.bes[backendKey{ID: 999, Slot: 0}] = backendValue{}
	km.bes[backendKey{ID: 1, Slot: 7}] = backendValue{}

	tb := NewTable()
	tb.Adopt(km.svcs, km.bes)
	if tb.Len() != 10 {
		t.Fatalf("adopted %d", tb.Len())
	}
	ops, _ = tb.Plan(d, Scope{All: true})
	km.apply(ops)
	tb.Commit(ops)
	km.check(t, d)
	if len(ops.ServiceKeys) != 0 {
		t.Errorf("adopting identical contents rewrote %d services", len(ops.ServiceKeys))
	}
}

func TestTableRefusesAddressOfAnotherPort(t *testing.T) {
	a := svc(port("ns", "a"), "10.96.0.1")
	tb := NewTable()
	d, _ := Render(snap1(a, ep("10.0.0.1:80", 1)), RenderOptions{})
	ops, _ := tb.Plan(d, Scope{All: true})
	tb.Commit(ops)
	b := svc(port("ns", "b"), "10.96.0.1")
	want, _ := Render(snap1(b, ep("10.0.0.2:80", 1)), RenderOptions{})
	ops, errs := tb.Plan(want, Scope{Ports: map[state.ServicePortName]struct{}{b.Name: {}}})
	if len(errs) != 1 || ops.Len() != 0 {
		t.Errorf("errs %v, ops %d: want the clash reported and nothing written", errs, ops.Len())
	}
}

func TestTableSweepsAffinityOfChangedServices(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	sp.AffinityTimeout = time.Hour
	tb := NewTable()
	d, _ := Render(snap1(sp, ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 1)), RenderOptions{})
	ops, _ := tb.Plan(d, Scope{All: true})
	if ops.AffinitySweep != nil {
		t.Errorf("a new Service swept affinity: %v", ops.AffinitySweep)
	}
	tb.Commit(ops)
	d, _ = Render(snap1(sp, ep("10.0.0.2:80", 1)), RenderOptions{})
	ops, _ = tb.Plan(d, Scope{All: true})
	keep, ok := ops.AffinitySweep[1]
	if !ok || len(keep) != 1 || !keep[newBackend(netip.MustParseAddrPort("10.0.0.2:80"))] {
		t.Errorf("endpoint removal: sweep %v, want id 1 keeping only 10.0.0.2:80", ops.AffinitySweep)
	}
	tb.Commit(ops)
	ops, _ = tb.Plan(Desired{}, Scope{All: true})
	if keep, ok := ops.AffinitySweep[1]; !ok || keep != nil {
		t.Errorf("Service removal: sweep %v, want every entry of id 1", ops.AffinitySweep)
	}
}
