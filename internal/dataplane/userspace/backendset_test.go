package userspace

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// TestFillMatchesMaps applies random changes (endpoints added, removed,
// reweighted; the scheduler kept or replaced; lists sorted or shuffled) to a
// chain of sets and requires the merge (fill) to give what the maps it replaced
// gave: every endpoint of the list with its weight, the very backend objects of
// the endpoints that stay (extras included), the old list's leavers as extras
// only while the scheduler is shared, and the whole in strict address order.
func TestFillMatchesMaps(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	svc := &service{}
	var old *backendSet
	var eps []state.Endpoint
	for step := 0; step < 500; step++ {
		eps = randomEndpoints(rng, eps)
		if rng.IntN(3) == 0 {
			rng.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
		}
		sameSched := old != nil && rng.IntN(4) != 0
		next := &backendSet{list: backendList(eps)}
		next.fill(old, svc, eps, sameSched)
		wantWeight := map[netip.AddrPort]int{}
		for _, b := range next.list {
			wantWeight[b.Addr] = b.Weight
		}
		wantExtra := map[netip.AddrPort]bool{}
		if sameSched {
			for _, b := range old.list {
				if _, stays := wantWeight[b.Addr]; !stays {
					wantExtra[b.Addr] = true
				}
			}
		}
		if got := len(next.byAddr); got != len(wantWeight)+len(wantExtra) {
			t.Fatalf("step %d: %d entries, want %d endpoints and %d extras", step, got, len(wantWeight), len(wantExtra))
		}
		for i, e := range next.byAddr {
			a := e.b.addr
			if i > 0 && next.byAddr[i-1].b.addr.Compare(a) >= 0 {
				t.Fatalf("step %d: entries out of order at %s", step, a)
			}
			if w, ok := wantWeight[a]; ok != e.inList || (ok && w != e.weight) || (!ok && !wantExtra[a]) {
				t.Fatalf("step %d: entry %s = %+v, want weight %d in list %v", step, a, e, w, ok)
			}
			if old != nil {
				if ob := old.backend(a); ob != nil && ob != e.b {
					t.Fatalf("step %d: backend %s was not carried over", step, a)
				}
			}
			if got, want := next.backend(a), e.b; got != want || next.has(a) != e.inList {
				t.Fatalf("step %d: lookup of %s gives %p (in list %v), want %p", step, a, got, next.has(a), want)
			}
		}
		old = next
	}
}

// TestFillKeepsFirstOfRepeats: an address listed twice is one endpoint with
// the first weight, as lb's pool keeps it.
func TestFillKeepsFirstOfRepeats(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddrPort("10.0.0.2:80")
	b := netip.MustParseAddrPort("10.0.0.1:80")
	eps := []state.Endpoint{
		{IP: a.Addr(), Port: 80, Weight: 3}, {IP: b.Addr(), Port: 80, Weight: 1}, {IP: a.Addr(), Port: 80, Weight: 7},
	}
	set := &backendSet{list: backendList(eps)}
	set.fill(nil, &service{}, eps, false)
	if len(set.byAddr) != 2 || set.byAddr[0].b.addr != b || set.byAddr[1].b.addr != a {
		t.Fatalf("entries %+v, want %s then %s", set.byAddr, b, a)
	}
	if e, _ := set.entry(a); e.weight != 3 {
		t.Fatalf("weight of %s = %d, want the first, 3", a, e.weight)
	}
	if set.backend(netip.MustParseAddrPort("10.0.0.3:80")) != nil {
		t.Fatal("an address not in the set was found")
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
