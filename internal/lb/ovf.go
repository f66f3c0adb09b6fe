package lb

import (
	"math/bits"
	"slices"
)

func init() { Register("ovf", func(Options) (Scheduler, error) { return newOVF(), nil }) }

// ovf is weighted overflow (ip_vs_ovf): new connections go to the highest-weight
// backend until its active connections exceed its weight, then overflow to the next
// highest, and so on. Weights act as connection limits; inactive connections (UDP)
// do not count, so it suits TCP.
//
// Backends are ranked by weight (then list order) on Update; a two-level bitmap marks
// the ranks that still have room, so Pick finds the first one without a scan.
type ovf struct {
	pool
	ranked []*dest // by weight descending, list order among equals
	room   rankSet
}

func newOVF() *ovf {
	s := &ovf{}
	s.changed = s.mark
	return s
}

func (s *ovf) Name() string { return "ovf" }

func (s *ovf) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.ranked = s.ranked[:0]
	for _, d := range s.dests {
		if d.available() {
			s.ranked = append(s.ranked, d)
		}
	}
	slices.SortStableFunc(s.ranked, func(a, b *dest) int { return b.Weight - a.Weight })
	s.room.reset(len(s.ranked))
	for i, d := range s.ranked {
		d.pos2 = i
		s.mark(d)
	}
	for _, d := range s.dests {
		if !d.available() {
			d.pos2 = -1
		}
	}
}

// mark records whether d may take another connection.
func (s *ovf) mark(d *dest) {
	if d.pos2 < 0 {
		return
	}
	s.room.set(d.pos2, d.active <= int64(d.Weight))
}

func (s *ovf) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.room.first()
	if i < 0 {
		return Backend{}, false
	}
	return s.picked(s.ranked[i])
}

// rankSet is a set of small integers with a fast "first member": one summary bit per
// 64-bit word, so finding the first member reads at most n/4096 + 1 words.
type rankSet struct {
	words, summary []uint64
}

func (r *rankSet) reset(n int) {
	w := (n + 63) / 64
	r.words = slices.Grow(r.words[:0], w)[:w]
	clear(r.words)
	sw := (w + 63) / 64
	r.summary = slices.Grow(r.summary[:0], sw)[:sw]
	clear(r.summary)
}

func (r *rankSet) set(i int, on bool) {
	w := i / 64
	if on {
		r.words[w] |= 1 << (i % 64)
	} else {
		r.words[w] &^= 1 << (i % 64)
	}
	if r.words[w] != 0 {
		r.summary[w/64] |= 1 << (w % 64)
	} else {
		r.summary[w/64] &^= 1 << (w % 64)
	}
}

func (r *rankSet) first() int {
	for s, sw := range r.summary {
		if sw != 0 {
			w := s*64 + bits.TrailingZeros64(sw)
			return w*64 + bits.TrailingZeros64(r.words[w])
		}
	}
	return -1
}
