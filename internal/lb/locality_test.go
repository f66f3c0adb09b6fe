package lb

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLBLCSticksUntilOverloaded(t *testing.T) {
	bs := backends(3, 2, 2, 2)
	s := newLBLC()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	s.now = clk.now
	s.Update(bs)
	// Destination X goes to A (wlc, all idle) and stays there while A is not
	// overloaded, even though B and C are idler.
	for i := 0; i < 3; i++ {
		if got := pickIndex(t, s, toDst(1), bs); got != 0 {
			t.Fatalf("pick %d for X: %s, want A", i, names([]int{got}))
		}
		s.Opened(bs[0].Addr, true)
	}
	// A has 3 active > weight 2 and B is under half load: X moves to the wlc choice.
	got := pickIndex(t, s, toDst(1), bs)
	if got == 0 {
		t.Fatal("overloaded A still chosen")
	}
	// ... and the new backend is remembered.
	if again := pickIndex(t, s, toDst(1), bs); again != got {
		t.Fatalf("X moved again: %s then %s", names([]int{got}), names([]int{again}))
	}
	// A second destination gets its own wlc choice.
	if other := pickIndex(t, s, toDst(2), bs); other == 0 {
		t.Fatal("new destination sent to the loaded backend")
	}
}

func TestLBLCNotOverloadedWhenAllBusy(t *testing.T) {
	bs := backends(2, 1, 1)
	s := mustNew(t, "lblc", Options{}, bs)
	first := pickIndex(t, s, toDst(1), bs)
	// Both over weight: nobody is under half load, so the kernel keeps the entry.
	for i := 0; i < 2; i++ {
		s.Opened(bs[0].Addr, true)
		s.Opened(bs[1].Addr, true)
	}
	if got := pickIndex(t, s, toDst(1), bs); got != first {
		t.Fatalf("all busy: moved from %d to %d", first, got)
	}
	// Weight 0 on the remembered backend moves the destination.
	bs[first].Weight = 0
	s.Update(bs)
	if got := pickIndex(t, s, toDst(1), bs); got == first {
		t.Fatal("weight-0 backend still chosen")
	}
}

func TestLBLCExpires(t *testing.T) {
	bs := backends(2)
	s := newLBLC()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	s.now = clk.now
	s.Update(bs)
	pickIndex(t, s, toDst(1), bs)
	clk.advance(time.Hour)
	pickIndex(t, s, toDst(2), bs)
	if len(s.cache) != 2 {
		t.Fatalf("cache has %d entries, want 2", len(s.cache))
	}
	clk.advance(localityExpire)
	pickIndex(t, s, toDst(2), bs) // sweep: X unused for 25h goes, Y was used 24h ago
	if _, ok := s.cache[toDst(1).Dst.Addr()]; ok || len(s.cache) != 1 {
		t.Fatalf("after expiry cache has %d entries", len(s.cache))
	}
}

func TestLBLCRGrowsAndShrinksSet(t *testing.T) {
	bs := backends(3, 1, 1, 1)
	s := newLBLCR()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	s.now = clk.now
	s.Update(bs)
	x := toDst(7)
	key := x.Dst.Addr()
	a := pickIndex(t, s, x, bs)
	s.Opened(bs[a].Addr, true)
	s.Opened(bs[a].Addr, true) // 2 active > weight 1, others idle: overloaded
	b := pickIndex(t, s, x, bs)
	if b == a || len(s.cache[key].set) != 2 {
		t.Fatalf("overloaded set member: picked %d (first %d), set size %d; want a new member and size 2", b, a, len(s.cache[key].set))
	}
	// The set now serves X from its least loaded member: b.
	if got := pickIndex(t, s, x, bs); got != b {
		t.Fatalf("set pick = %d, want least loaded %d", got, b)
	}
	// After the expiry time without change, the most loaded member (a) is dropped.
	clk.advance(localityExpire + time.Second)
	pickIndex(t, s, x, bs)
	set := s.cache[key].set
	if len(set) != 1 || set[0].Addr != bs[b].Addr {
		t.Fatalf("after expiry set = %v, want only %v", set, bs[b].Addr)
	}
	// A removed backend leaves the sets.
	s.Update([]Backend{bs[a]})
	if got := pickIndex(t, s, x, bs); got != a {
		t.Fatalf("after removing the member, picked %d, want the remaining %d", got, a)
	}
}
