package lb

import (
	"math/bits"
	"math/rand/v2"
)

func init() { Register("twos", func(Options) (Scheduler, error) { return newTwos(), nil }) }

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

func newTwos() *twos {
	s := &twos{}
	s.changed = func(d *dest) {
		if d.pos2 >= 0 {
			s.alias.cols[d.pos2].over = d.overhead()
		}
	}
	return s
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
	if b.over*a.weight < a.over*b.weight {
		a = b
	}
	return s.picked(a.d)
}

// aliasTable draws a backend with probability weight/total in O(1) (Vose's alias
// method). A column also carries its backend's load, so that a draw that keeps its
// column — every draw when weights are equal — reads one cache line in all: at
// 100,000 backends each scattered read is a cache miss.
type aliasTable struct {
	cols []aliasCol
}

type aliasCol struct {
	keep   uint32 // keep this column when the low 32 random bits are below; else alt
	alt    int32  // column index
	d      *dest
	weight int64
	over   int64 // backend overhead, kept current by twos.changed
}

func (t *aliasTable) build(all []*dest) {
	t.cols = t.cols[:0]
	total := int64(0)
	for _, d := range all {
		d.pos2 = -1
		if d.available() {
			d.pos2 = len(t.cols)
			t.cols = append(t.cols, aliasCol{alt: int32(len(t.cols)), d: d, weight: int64(d.Weight), over: d.overhead()})
			total += int64(d.Weight)
		}
	}
	n := int64(len(t.cols))
	// Column i starts with weight*n of mass; a full column holds total.
	scaled := make([]int64, n)
	var small, large []int
	for i, c := range t.cols {
		scaled[i] = c.weight * n
		if scaled[i] < total {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		sm, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		q, _ := bits.Div64(uint64(scaled[sm]), 0, uint64(total))
		t.cols[sm].keep = uint32(q >> 32)
		t.cols[sm].alt = int32(l)
		scaled[l] -= total - scaled[sm]
		if scaled[l] < total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		t.cols[i].keep = ^uint32(0)
	}
}

func (t *aliasTable) draw() (*aliasCol, bool) {
	n := uint64(len(t.cols))
	if n == 0 {
		return nil, false
	}
	r := rand.Uint64()
	c := &t.cols[(r>>32)*n>>32]
	if uint32(r) < c.keep {
		return c, true
	}
	return &t.cols[c.alt], true
}
