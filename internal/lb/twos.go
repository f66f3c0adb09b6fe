package lb

import (
	"math/bits"
	"math/rand/v2"
)

func init() { Register("twos", func(Options) (Scheduler, error) { return &twos{}, nil }) }

// twos is weighted random twos choice (ip_vs_twos): two backends are drawn at random
// in proportion to their weights and the one with the lower overhead/weight takes the
// connection (the first draw on a tie). It balances nearly as well as wlc with no
// shared ordering, and avoids herding onto one idle backend.
//
// Draws use an alias table (Vose), so a Pick costs the same for 10 or 100,000
// backends. The kernel's walk gives the first backend one extra unit of weight (its
// random value is inclusive of the total); that quirk is not reproduced.
type twos struct {
	pool
	alias aliasTable
}

func (s *twos) Name() string { return "twos" }

func (s *twos) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.alias.build(s.dests)
}

func (s *twos) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.alias.draw()
	if !ok {
		return Backend{}, false
	}
	b, _ := s.alias.draw()
	if b.overhead()*int64(a.Weight) < a.overhead()*int64(b.Weight) {
		a = b
	}
	return a.Backend, true
}

// aliasTable draws a backend with probability weight/total in O(1).
type aliasTable struct {
	ds    []*dest
	prob  []uint64 // threshold in [0, 2^64): keep column i below it
	alias []int32
}

func (t *aliasTable) build(all []*dest) {
	t.ds = t.ds[:0]
	total := 0
	for _, d := range all {
		if d.available() {
			t.ds = append(t.ds, d)
			total += d.Weight
		}
	}
	n := len(t.ds)
	t.prob = append(t.prob[:0], make([]uint64, n)...)
	t.alias = append(t.alias[:0], make([]int32, n)...)
	if n == 0 {
		return
	}
	// Scaled weights: column i holds weight*n/total of the mass; 1.0 = total.
	scaled := make([]int64, n)
	var small, large []int32
	for i, d := range t.ds {
		scaled[i] = int64(d.Weight) * int64(n)
		if scaled[i] < int64(total) {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.prob[s] = fraction(scaled[s], int64(total))
		t.alias[s] = l
		scaled[l] -= int64(total) - scaled[s]
		if scaled[l] < int64(total) {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		t.prob[i] = ^uint64(0)
		t.alias[i] = i
	}
}

// fraction returns num/den scaled to 2^64, for num < den.
func fraction(num, den int64) uint64 {
	q, _ := bits.Div64(uint64(num), 0, uint64(den))
	return q
}

func (t *aliasTable) draw() (*dest, bool) {
	n := len(t.ds)
	if n == 0 {
		return nil, false
	}
	i := rand.IntN(n)
	if rand.Uint64() < t.prob[i] {
		return t.ds[i], true
	}
	return t.ds[t.alias[i]], true
}
