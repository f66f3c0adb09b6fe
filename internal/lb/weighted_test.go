package lb

import (
	"math/rand/v2"
	"sync"
	"testing"
)

func TestFOFailsOverByWeight(t *testing.T) {
	bs := backends(3, 5, 10, 10)
	s := mustNew(t, "fo", Options{}, bs)
	for i := 0; i < 5; i++ {
		if got := open(t, s, bs, true); got != 1 {
			t.Fatalf("fo picked %s, want B (first of the highest weight)", names([]int{got}))
		}
	}
	bs[1].Weight = 0
	s.Update(bs)
	if got := pickIndex(t, s, client(0), bs); got != 2 {
		t.Fatalf("B drained: fo picked %s, want C", names([]int{got}))
	}
	s.Update(bs[:2])
	if got := pickIndex(t, s, client(0), bs); got != 0 {
		t.Fatalf("only A left with weight: fo picked %s, want A", names([]int{got}))
	}
}

func TestOVFOverflowsAtWeight(t *testing.T) {
	bs := backends(3, 2, 3, 1)
	s := mustNew(t, "ovf", Options{}, bs)
	var seq []int
	for i := 0; i < 9; i++ {
		seq = append(seq, open(t, s, bs, true))
	}
	// B (3) takes 4 connections (it overflows when active > weight), then A (2) 3,
	// then C (1) 2; after that nobody has room.
	if got := names(seq); got != "BBBBAAACC" {
		t.Fatalf("ovf order = %s, want BBBBAAACC", got)
	}
	if b, ok := s.Pick(client(0)); ok {
		t.Fatalf("all over weight: picked %v", b.Addr)
	}
	// Inactive connections do not count; closing an active one frees room.
	s.Opened(bs[1].Addr, false)
	s.Closed(bs[1].Addr, true)
	if got := pickIndex(t, s, client(0), bs); got != 1 {
		t.Fatalf("after a close on B: picked %s, want B", names([]int{got}))
	}
}

func TestOVFRankSetLarge(t *testing.T) {
	bs := backends(5000)
	s := mustNew(t, "ovf", Options{}, bs)
	// Fill the first 4999 backends: the last one must be found.
	for i := 0; i < 4999; i++ {
		s.Opened(bs[i].Addr, true)
		s.Opened(bs[i].Addr, true)
	}
	if got := pickIndex(t, s, client(0), bs); got != 4999 {
		t.Fatalf("picked %d, want 4999", got)
	}
}

func TestTwosFollowsWeightsAndLoad(t *testing.T) {
	bs := backends(3, 3, 1, 0)
	s := mustNew(t, "twos", Options{}, bs)
	counts := make([]int, 3)
	for i := 0; i < 8000; i++ {
		counts[pickIndex(t, s, client(i), bs)]++
	}
	if counts[2] != 0 {
		t.Fatalf("weight-0 backend got %d picks", counts[2])
	}
	// Idle backends: the first draw wins ties, so the split follows weights 3:1.
	if r := float64(counts[0]) / float64(counts[1]); r < 2.6 || r > 3.4 {
		t.Fatalf("twos {3,1} idle split %v, want about 3:1", counts)
	}
	// A loaded heavily: it wins only when both draws are A (9/16 of the time).
	for i := 0; i < 50; i++ {
		s.Opened(bs[0].Addr, true)
	}
	counts = make([]int, 3)
	for i := 0; i < 8000; i++ {
		counts[pickIndex(t, s, client(i), bs)]++
	}
	if f := float64(counts[0]) / 8000; f < 0.50 || f > 0.62 {
		t.Fatalf("loaded A took %.2f of picks, want about 9/16", f)
	}
}

// Every algorithm: no backends or only weight-0 backends means no pick, and a weight-0
// backend never takes a connection while others can.
func TestAllWeightZeroTakesNothing(t *testing.T) {
	for _, name := range Names() {
		flags := []string(nil)
		if name == "sh" {
			flags = []string{"sh-fallback"}
		}
		s := mustNew(t, name, Options{Flags: flags, MHTableSize: 1009}, nil)
		if _, ok := s.Pick(client(0)); ok {
			t.Errorf("%s: no backends, Pick succeeded", name)
		}
		s.Update(backends(3, 0, 0, 0))
		if _, ok := s.Pick(client(0)); ok {
			t.Errorf("%s: all weights 0, Pick succeeded", name)
		}
		bs := backends(4, 0, 1, 0, 2)
		s.Update(bs)
		for i := 0; i < 200; i++ {
			b, ok := s.Pick(client(i))
			if !ok {
				if name == "dh" || name == "ovf" {
					// dh refuses when its bucket is drained, ovf when every backend
					// is over its weight: both as in the kernel.
					continue
				}
				t.Fatalf("%s: no pick with two backends of positive weight", name)
			}
			if b.Weight == 0 {
				t.Fatalf("%s picked weight-0 backend %v", name, b.Addr)
			}
			s.Opened(b.Addr, i%2 == 0)
		}
		if s.Name() != name {
			t.Errorf("%s: Name() = %q", name, s.Name())
		}
	}
}

func TestRegistry(t *testing.T) {
	want := []string{"dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "random", "rr", "sed", "sh", "twos", "wlc", "wrr"}
	got := Names()
	if len(got) != len(want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Names() = %v, want %v", got, want)
		}
	}
	if err := Validate("maglev", nil); err == nil {
		t.Fatal("unknown scheduler accepted")
	}
	if err := Validate("rr", []string{"mh-port"}); err == nil {
		t.Fatal("rr accepted mh-port")
	}
}

// Concurrent picks, opens, closes and updates must not race (run with -race).
func TestConcurrentUse(t *testing.T) {
	for _, name := range Names() {
		bs := backends(16)
		s := mustNew(t, name, Options{MHTableSize: 1009}, bs)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 9))
				for i := 0; i < 300; i++ {
					if b, ok := s.Pick(client(i)); ok {
						s.Opened(b.Addr, true)
						s.Closed(b.Addr, true)
					}
					if rng.IntN(50) == 0 {
						s.Update(backends(8 + rng.IntN(8)))
					}
					_ = s.Counters()
				}
			}(g)
		}
		wg.Wait()
		for _, c := range s.Counters() {
			if c.Active != 0 {
				t.Fatalf("%s: %v has %d active after balanced open/close", name, c.Addr, c.Active)
			}
		}
	}
}
