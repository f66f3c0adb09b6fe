package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// withHash runs f with hashName replaced (to force collisions), then restores it.
func withHash(t *testing.T, h func(ServicePortName) uint64, f func()) {
	t.Helper()
	saved := hashName
	hashName = h
	defer func() { hashName = saved }()
	f()
}

// contents copies an index into a map, failing on a name seen twice or a count
// that disagrees with the entries.
func contents(t *testing.T, ix *portIndex) map[ServicePortName]*ServicePort {
	t.Helper()
	out := map[ServicePortName]*ServicePort{}
	ix.root.each(func(e *portEntry) bool {
		if _, dup := out[e.name()]; dup {
			t.Fatalf("%v listed twice", e.name())
		}
		out[e.name()] = e.sp
		return true
	})
	if len(out) != ix.n {
		t.Fatalf("index counts %d entries, lists %d", ix.n, len(out))
	}
	return out
}

// TestIndexKeepsEveryVersion applies random puts and removes, one generation
// after another, and checks after each that every earlier index still holds what
// a map cloned at its generation holds (the Tracker's former maps.Clone), with
// the real hash, a hash of 4 bits (every path as deep as it goes) and a constant
// hash (every entry in one collision list).
func TestIndexKeepsEveryVersion(t *testing.T) {
	real := hashName
	hashes := map[string]func(ServicePortName) uint64{
		"maphash":  real,
		"4 bits":   func(n ServicePortName) uint64 { return real(n) >> 60 },
		"constant": func(ServicePortName) uint64 { return 42 },
	}
	for name, h := range hashes {
		t.Run(name, func(t *testing.T) {
			withHash(t, h, func() {
				rng := rand.New(rand.NewPCG(1, 2))
				var ixs []*portIndex
				var want []map[ServicePortName]*ServicePort
				cur, ref := &portIndex{}, map[ServicePortName]*ServicePort{}
				for gen := uint64(1); gen <= 60; gen++ {
					cur = cur.derive(gen)
					for range rng.IntN(40) {
						n := ServicePortName{Namespace: "ns", Name: fmt.Sprint("svc-", rng.IntN(300)), Protocol: v1.ProtocolTCP}
						if rng.IntN(3) == 0 {
							cur.remove(n)
							delete(ref, n)
							continue
						}
						sp := &ServicePort{Name: n, Port: int32(gen)}
						cur.put(&portEntry{sp: sp})
						ref[n] = sp
					}
					ixs, want = append(ixs, cur), append(want, maps.Clone(ref))
					for i := range ixs {
						if got := contents(t, ixs[i]); !maps.Equal(got, want[i]) {
							t.Fatalf("after generation %d, generation %d holds %d entries, want %d", gen, i+1, len(got), len(want[i]))
						}
					}
				}
				for n := range ref {
					cur.remove(n)
				}
				if cur.n != 0 || cur.root != nil {
					t.Fatalf("emptied index: %d entries, root %v", cur.n, cur.root)
				}
			})
		})
	}
}

// TestIndexGetAfterRemove: a removed name is gone, its neighbours stay, and a
// subtree left with one entry still finds it.
func TestIndexGetAfterRemove(t *testing.T) {
	withHash(t, func(n ServicePortName) uint64 { return uint64(len(n.Name)) }, func() {
		ix := (&portIndex{}).derive(1)
		a, b := ServicePortName{Name: "aa"}, ServicePortName{Name: "bb"} // same hash
		ix.put(&portEntry{sp: &ServicePort{Name: a, Port: 1}})
		ix.put(&portEntry{sp: &ServicePort{Name: b, Port: 2}})
		frozen := ix
		ix = ix.derive(2)
		ix.remove(a)
		if ix.get(a) != nil || ix.get(b) == nil || ix.get(b).sp.Port != 2 || ix.n != 1 {
			t.Fatalf("after removing a: a %v, b %v, n %d", ix.get(a), ix.get(b), ix.n)
		}
		if frozen.get(a) == nil || frozen.get(b) == nil || frozen.n != 2 {
			t.Fatal("removing from the derived index changed its parent")
		}
	})
}

// TestTrackerSnapshotsStayAsHandedOut drives a Tracker through random Service and
// EndpointSlice upserts and deletes and keeps every snapshot with a copy of what
// it held when handed out: none may change while the Tracker moves on, and the
// last must equal a snapshot built from scratch from the same objects.
func TestTrackerSnapshotsStayAsHandedOut(t *testing.T) {
	type copyOf struct {
		ports map[ServicePortName]ServicePort
		eps   map[ServicePortName][]Endpoint
	}
	take := func(s *Snapshot) copyOf {
		c := copyOf{map[ServicePortName]ServicePort{}, map[ServicePortName][]Endpoint{}}
		for n, sp := range s.All() {
			c.ports[n] = *sp
			c.eps[n] = append([]Endpoint(nil), s.EndpointsOf(n)...)
			if psp, peps := s.Port(n); psp != sp || s.Service(n) != sp || !reflect.DeepEqual(peps, s.EndpointsOf(n)) {
				t.Fatalf("%v: Port, Service and EndpointsOf disagree with All", n)
			}
		}
		if len(c.ports) != s.Len() {
			t.Fatalf("Len %d, All yields %d", s.Len(), len(c.ports))
		}
		return c
	}
	rng := rand.New(rand.NewPCG(3, 4))
	tr := NewTracker(Options{NodeName: "node-a"})
	var snaps []*Snapshot
	var copies []copyOf
	for range 80 {
		for range 1 + rng.IntN(20) {
			i := rng.IntN(200)
			name := fmt.Sprint("svc-", i)
			switch rng.IntN(4) {
			case 0:
				tr.DeleteService("ns", name)
			case 1:
				tr.DeleteEndpointSlice("ns", name+"-1")
			default:
				tr.UpsertService(testService("ns", name, netip.AddrFrom4([4]byte{10, 96, 0, byte(i)}).String()))
				ip := netip.AddrFrom4([4]byte{10, 1, byte(i), byte(rng.IntN(3))}).String()
				tr.UpsertEndpointSlice(testSlice("ns", name+"-1", name, map[string]int32{"http": 8080}, ready(ip)))
			}
		}
		s, _ := tr.Snapshot()
		snaps, copies = append(snaps, s), append(copies, take(s))
	}
	for i, s := range snaps {
		if got := take(s); !reflect.DeepEqual(got, copies[i]) {
			t.Fatalf("snapshot %d changed after it was handed out", s.Generation)
		}
	}
	fresh := NewTracker(Options{NodeName: "node-a"})
	for _, svc := range tr.services {
		fresh.UpsertConvertedService(svc)
	}
	for _, es := range tr.slices {
		fresh.UpsertSlice(es)
	}
	want, _ := fresh.Snapshot()
	if got := take(snaps[len(snaps)-1]); !reflect.DeepEqual(got, take(want)) {
		t.Fatalf("incremental snapshot (%d ports) differs from one built from scratch (%d ports)", len(got.ports), want.Len())
	}
	if want.Len() == 0 {
		t.Fatal("the random workload left no Service: the comparison proves nothing")
	}
}

// TestSnapshotMethodsReadHandBuiltMaps: a snapshot built by hand (no index) is
// read through the same methods from its maps.
func TestSnapshotMethodsReadHandBuiltMaps(t *testing.T) {
	a, b := portName("ns", "a", "http"), portName("ns", "b", "http")
	eps := []Endpoint{{IP: netip.MustParseAddr("10.1.0.1"), Port: 80}}
	s := &Snapshot{
		ServiceMap:  map[ServicePortName]*ServicePort{a: {Name: a}, b: {Name: b}},
		EndpointMap: map[ServicePortName][]Endpoint{a: eps},
	}
	if s.Len() != 2 || s.Service(a) == nil || s.Service(portName("ns", "c", "http")) != nil {
		t.Fatalf("Len %d, Service(a) %v", s.Len(), s.Service(a))
	}
	if sp, got := s.Port(a); sp != s.ServiceMap[a] || !reflect.DeepEqual(got, eps) || s.EndpointsOf(b) != nil {
		t.Fatalf("Port(a) = %v, %v; EndpointsOf(b) = %v", sp, got, s.EndpointsOf(b))
	}
	if got := s.SortedNames(); !reflect.DeepEqual(got, []ServicePortName{a, b}) {
		t.Fatalf("SortedNames %v", got)
	}
}
