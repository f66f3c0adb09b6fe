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
	// load mirrors each backend's overhead and weight by position, so that comparing
	// the two draws reads two small array entries instead of two scattered backends.
	load []twosLoad
}

type twosLoad struct{ over, weight int64 }

func newTwos() *twos {
	s := &twos{}
	s.changed = func(d *dest) { s.load[d.pos].over = d.overhead() }
	return s
}

func (s *twos) Name() string { return "twos" }

func (s *twos) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.load = s.load[:0]
	for _, d := range s.dests {
		s.load = append(s.load, twosLoad{over: d.overhead(), weight: int64(d.Weight)})
	}
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
	la, lb := s.load[a], s.load[b]
	if lb.over*la.weight < la.over*lb.weight {
		a = b
	}
	return s.picked(s.dests[a])
}

// aliasTable draws a backend position with probability weight/total in O(1). Each
// column is one small struct, so a draw touches one cache line.
type aliasTable struct {
	cols []aliasCol
}

type aliasCol struct {
	keep   uint32 // keep pos when the low 32 random bits are below; else take alt
	pos    int32
	altPos int32
}

func (t *aliasTable) build(all []*dest) {
	t.cols = t.cols[:0]
	total := int64(0)
	for _, d := range all {
		if d.available() {
			t.cols = append(t.cols, aliasCol{pos: int32(d.pos), altPos: int32(d.pos)})
			total += int64(d.Weight)
		}
	}
	n := int64(len(t.cols))
	// Column i starts with weight*n of mass; a full column holds total (Vose).
	scaled := make([]int64, n)
	var small, large []int
	for i, c := range t.cols {
		scaled[i] = int64(all[c.pos].Weight) * n
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
		t.cols[sm].altPos = t.cols[l].pos
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

func (t *aliasTable) draw() (int32, bool) {
	n := uint64(len(t.cols))
	if n == 0 {
		return 0, false
	}
	r := rand.Uint64()
	c := &t.cols[(r>>32)*n>>32]
	if uint32(r) < c.keep {
		return c.pos, true
	}
	return c.altPos, true
}
