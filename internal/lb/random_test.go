package lb

import (
	"math"
	"testing"
)

func TestRandomHonoursWeights(t *testing.T) {
	bs := backends(4, 3, 1, 0, 2)
	s := mustNew(t, "random", Options{}, bs)
	const n = 60000
	count := make([]int, len(bs))
	for i := range n {
		count[pickIndex(t, s, client(i), bs)]++
	}
	if count[2] != 0 {
		t.Fatalf("weight-0 backend got %d connections", count[2])
	}
	for i, w := range []int{3, 1, 0, 2} {
		want := float64(n) * float64(w) / 6
		// 5 standard deviations of a binomial: a correct picker never fails.
		sd := math.Sqrt(want * (1 - float64(w)/6))
		if math.Abs(float64(count[i])-want) > 5*sd+1 {
			t.Fatalf("backend %d (weight %d): %d picks, want %.0f ± %.0f; all %v", i, w, count[i], want, 5*sd, count)
		}
	}
}

func TestRandomEmptyAndAllZero(t *testing.T) {
	s := mustNew(t, "random", Options{}, nil)
	if _, ok := s.Pick(client(0)); ok {
		t.Fatal("no backends: Pick succeeded")
	}
	s.Update(backends(3, 0, 0, 0))
	if b, ok := s.Pick(client(0)); ok {
		t.Fatalf("all weights 0: picked %v", b.Addr)
	}
	s.Update(backends(2))
	if _, ok := s.Pick(client(0)); !ok {
		t.Fatal("after an update with backends: Pick failed")
	}
}

func TestRandomIsRegistered(t *testing.T) {
	if err := Validate("random", nil); err != nil {
		t.Fatal(err)
	}
	if err := Validate("random", []string{"mh-port"}); err == nil {
		t.Fatal("random accepted flag mh-port")
	}
}

func TestRandomKeepsCounters(t *testing.T) {
	bs := backends(2)
	s := mustNew(t, "random", Options{}, bs)
	s.Opened(bs[1].Addr, true)
	s.Update(append(backends(2), Backend{Addr: addr(7), Weight: 1}))
	for _, c := range s.Counters() {
		if c.Addr == bs[1].Addr && c.Active != 1 {
			t.Fatalf("counters after update: %+v", s.Counters())
		}
	}
}
