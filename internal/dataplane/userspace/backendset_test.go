package userspace

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// TestDeriveFromMatchesBuild applies random changes (endpoints added, removed,
// reweighted; the scheduler kept or replaced) to a chain of sets and requires
// the merge (deriveFrom) to give what the full build gives: the same current
// weights, the same backends (the very objects carried over), the same extras.
func TestDeriveFromMatchesBuild(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	svc := &service{metrics: map[netip.AddrPort]*backendMetric{}}
	eps := randomEndpoints(rng, nil)
	old := &backendSet{list: backendList(eps), sorted: true}
	old.build(nil, svc, eps, false)
	for step := 0; step < 300; step++ {
		eps = randomEndpoints(rng, eps)
		sameSched := rng.IntN(4) != 0
		list := backendList(eps)
		if !sortedUnique(list) {
			t.Fatalf("step %d: test endpoints not sorted", step)
		}
		full := &backendSet{list: list, sorted: true}
		full.build(old, svc, eps, sameSched)
		merged := &backendSet{list: list, sorted: true}
		merged.deriveFrom(old, svc, eps, sameSched)
		if !equalMaps(full.current, merged.current) {
			t.Fatalf("step %d: current %v, want %v", step, merged.current, full.current)
		}
		if len(full.backends) != len(merged.backends) {
			t.Fatalf("step %d: %d backends, want %d", step, len(merged.backends), len(full.backends))
		}
		for a, b := range full.backends {
			m := merged.backends[a]
			if m == nil || (old.backends[a] != nil && m != b) || m.addr != a || m.local != b.local {
				t.Fatalf("step %d: backend %s = %+v, want %+v", step, a, m, b)
			}
		}
		fe, me := slices.Clone(full.extra), slices.Clone(merged.extra)
		slices.SortFunc(fe, netip.AddrPort.Compare)
		slices.SortFunc(me, netip.AddrPort.Compare)
		if !slices.Equal(fe, me) {
			t.Fatalf("step %d: extra %v, want %v", step, me, fe)
		}
		old = merged
	}
}

// randomEndpoints changes a few endpoints of prev (or makes a new list): some
// leave, some come, some change weight or locality. The result is sorted.
func randomEndpoints(rng *rand.Rand, prev []state.Endpoint) []state.Endpoint {
	set := map[netip.AddrPort]state.Endpoint{}
	for _, e := range prev {
		if rng.IntN(10) != 0 {
			if rng.IntN(10) == 0 {
				e.Weight = rng.IntN(3)
			}
			set[e.AddrPort()] = e
		}
	}
	for n := rng.IntN(6); n > 0 || len(set) == 0; n-- {
		e := state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, 0, byte(rng.IntN(64))}), Port: 8080,
			Weight: 1, IsLocal: rng.IntN(2) == 0}
		set[e.AddrPort()] = e
	}
	out := make([]state.Endpoint, 0, len(set))
	for _, e := range set {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b state.Endpoint) int { return a.AddrPort().Compare(b.AddrPort()) })
	return out
}

func backendList(eps []state.Endpoint) []lb.Backend {
	out := make([]lb.Backend, 0, len(eps))
	for _, e := range eps {
		out = append(out, lb.Backend{Addr: e.AddrPort(), Weight: e.Weight})
	}
	return out
}

func equalMaps(a, b map[netip.AddrPort]int) bool {
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
