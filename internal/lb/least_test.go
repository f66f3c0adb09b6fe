package lb

import (
	"math/rand/v2"
	"testing"
)

// open picks for a client and records the connection, as a dataplane does.
func open(t *testing.T, s Scheduler, bs []Backend, active bool) int {
	t.Helper()
	i := pickIndex(t, s, client(0), bs)
	s.Opened(bs[i].Addr, active)
	return i
}

func TestLCOverheadCountsActive256(t *testing.T) {
	bs := backends(2)
	s := mustNew(t, "lc", Options{}, bs)
	s.Opened(bs[0].Addr, true) // A: 256
	for i := 0; i < 255; i++ {
		s.Opened(bs[1].Addr, false) // B: 255
	}
	if got := pickIndex(t, s, client(0), bs); got != 1 {
		t.Fatalf("A=256 B=255: picked %s, want B", names([]int{got}))
	}
	s.Opened(bs[1].Addr, false)
	s.Opened(bs[1].Addr, false) // B: 257
	if got := pickIndex(t, s, client(0), bs); got != 0 {
		t.Fatalf("A=256 B=257: picked %s, want A", names([]int{got}))
	}
}

func TestLCIgnoresWeightButWLCUsesIt(t *testing.T) {
	bs := backends(2, 1, 3)
	lc := mustNew(t, "lc", Options{}, bs)
	wlc := mustNew(t, "wlc", Options{}, bs)
	for _, s := range []Scheduler{lc, wlc} {
		s.Opened(bs[0].Addr, true) // A: 256/1
		s.Opened(bs[1].Addr, true)
		s.Opened(bs[1].Addr, true) // B: 512/3
	}
	if got := pickIndex(t, lc, client(0), bs); got != 0 {
		t.Fatalf("lc picked %s, want A (fewer connections)", names([]int{got}))
	}
	if got := pickIndex(t, wlc, client(0), bs); got != 1 {
		t.Fatalf("wlc picked %s, want B (512/3 < 256/1)", names([]int{got}))
	}
}

func TestSEDIgnoresInactive(t *testing.T) {
	bs := backends(2, 1, 2)
	s := mustNew(t, "sed", Options{}, bs)
	// B: (1+1)/2 = 1 with 100 inactive that sed must not count; A: (1+1)/1 = 2.
	s.Opened(bs[1].Addr, true)
	for i := 0; i < 100; i++ {
		s.Opened(bs[1].Addr, false)
	}
	s.Opened(bs[0].Addr, true)
	if got := pickIndex(t, s, client(0), bs); got != 1 {
		t.Fatalf("sed picked %s, want B ((1+1)/2 < (1+1)/1)", names([]int{got}))
	}
}

func TestNQTakesIdleFirst(t *testing.T) {
	bs := backends(2, 10, 1)
	nq := mustNew(t, "nq", Options{}, bs)
	sed := mustNew(t, "sed", Options{}, bs)
	for _, s := range []Scheduler{nq, sed} {
		s.Opened(bs[0].Addr, true) // A: busy but heavy: (1+1)/10
	}
	if got := pickIndex(t, nq, client(0), bs); got != 1 {
		t.Fatalf("nq picked %s, want idle B", names([]int{got}))
	}
	if got := pickIndex(t, sed, client(0), bs); got != 0 {
		t.Fatalf("sed picked %s, want A (2/10 < 1/1)", names([]int{got}))
	}
}

func TestLeastSpreadsEqualLoad(t *testing.T) {
	for _, name := range []string{"lc", "wlc", "sed", "nq"} {
		bs := backends(4)
		s := mustNew(t, name, Options{}, bs)
		seen := map[int]int{}
		for i := 0; i < 8; i++ {
			seen[open(t, s, bs, true)]++
		}
		for i := range bs {
			if seen[i] != 2 {
				t.Fatalf("%s: 8 connections over 4 equal backends: %v, want 2 each", name, seen)
			}
		}
	}
}

// kernelKey is the load each algorithm compares, straight from the kernel's scan.
var kernelKey = map[string]func(c Counter) ratio{
	"lc":  func(c Counter) ratio { return ratio{c.Active*256 + c.Inactive, 1} },
	"wlc": func(c Counter) ratio { return ratio{c.Active*256 + c.Inactive, int64(c.Weight)} },
	"sed": func(c Counter) ratio { return ratio{c.Active + 1, int64(c.Weight)} },
	"nq": func(c Counter) ratio {
		if c.Active == 0 {
			return ratio{0, 1}
		}
		return ratio{c.Active + 1, int64(c.Weight)}
	},
}

// Property: after any sequence of opens, closes and updates, the pick has the least
// load among backends of positive weight, as a full kernel-style scan computes it.
func TestLeastMatchesKernelScan(t *testing.T) {
	for name, key := range kernelKey {
		rng := rand.New(rand.NewPCG(1, uint64(len(name))))
		bs := backends(12)
		for i := range bs {
			bs[i].Weight = rng.IntN(4)
		}
		s := mustNew(t, name, Options{}, bs)
		for step := 0; step < 3000; step++ {
			switch r := rng.IntN(20); {
			case r == 0:
				bs[rng.IntN(len(bs))].Weight = rng.IntN(4)
				s.Update(bs)
			case r < 8:
				s.Closed(bs[rng.IntN(len(bs))].Addr, rng.IntN(2) == 0)
			default:
				b, ok := s.Pick(client(step))
				checkLeast(t, name, key, s.Counters(), b, ok)
				if ok {
					s.Opened(b.Addr, rng.IntN(3) > 0)
				}
			}
		}
	}
}

func checkLeast(t *testing.T, name string, key func(Counter) ratio, cs []Counter, b Backend, ok bool) {
	t.Helper()
	var best *ratio
	var got ratio
	for _, c := range cs {
		if c.Weight <= 0 {
			if ok && c.Addr == b.Addr {
				t.Fatalf("%s picked %v of weight 0", name, b.Addr)
			}
			continue
		}
		k := key(c)
		if best == nil || k.less(*best) {
			best = &k
		}
		if c.Addr == b.Addr {
			got = k
		}
	}
	if (best != nil) != ok {
		t.Fatalf("%s: Pick ok=%v but available backends: %v", name, ok, best != nil)
	}
	if ok && best.less(got) {
		t.Fatalf("%s picked %v with load %v, but %v is less; counters %+v", name, b.Addr, got, *best, cs)
	}
}

func TestLeastWeightZeroAndRemoval(t *testing.T) {
	for _, name := range []string{"lc", "wlc", "sed", "nq"} {
		bs := backends(2, 0, 1)
		s := mustNew(t, name, Options{}, bs)
		for i := 0; i < 5; i++ {
			if got := open(t, s, bs, true); got != 1 {
				t.Fatalf("%s picked weight-0 backend", name)
			}
		}
		s.Update(bs[:1])
		if _, ok := s.Pick(client(0)); ok {
			t.Fatalf("%s: only a weight-0 backend left, Pick succeeded", name)
		}
		// Counters of a removed backend are ignored, not resurrected.
		s.Closed(bs[1].Addr, true)
		s.Update(bs)
		if c := s.Counters(); c[1].Active != 0 {
			t.Fatalf("%s: re-added backend has counters %+v, want fresh", name, c[1])
		}
	}
}
