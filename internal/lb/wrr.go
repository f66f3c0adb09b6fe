package lb

func init() { Register("wrr", func(Options) (Scheduler, error) { return &wrr{}, nil }) }

// wrr is weighted round robin with the kernel's interleaving (ip_vs_wrr): pass after
// pass over the backend list, a backend is taken when its weight is at least the
// current weight cw; cw starts at the maximum weight and drops by the gcd of the
// weights after each pass. Weights {4,3,2} give A AB ABC ABC, repeated, rather than a
// naive AAAABBBCC burst.
//
// Like the kernel, a pick scans forward for the next backend whose weight reaches cw,
// which is about one step with ordinary weights. A few heavy backends among many
// light ones would make the high-cw passes scan the whole list, so after a short
// linear scan a max-tree over the weights jumps to the next match in O(log n).
type wrr struct {
	pool
	weights []int32 // by position, for a cache-friendly scan
	tree    maxTree
	cur     int // position of the last pick; -1 is the list head
	cw      int // current weight
	mw      int // maximum weight, lowered by gcd-1 like the kernel's mark->mw
	di      int // gcd of the positive weights
}

func (s *wrr) Name() string { return "wrr" }

func (s *wrr) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.weights = s.weights[:0]
	g, max := 0, 0
	for _, d := range s.dests {
		w := d.Weight
		if w < 0 {
			w = 0
		}
		s.weights = append(s.weights, int32(w))
		if w > 0 {
			g = gcd(g, w)
		}
		max = maxInt(max, w)
	}
	if g == 0 {
		g = 1
	}
	s.tree.build(s.weights)
	// Same reset as ip_vs_wrr_dest_changed: restart at the list head and keep cw
	// when it is still meaningful.
	s.cur, s.di, s.mw = -1, g, max-(g-1)
	if s.cw > s.mw || s.cw == 0 {
		s.cw = s.mw
	} else if s.di > 1 {
		s.cw = (s.cw/s.di)*s.di + 1
	}
}

func (s *wrr) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mw <= 0 {
		return Backend{}, false
	}
	n := len(s.weights)
	// At most one full pass per weight level (plus the partial first one) can be
	// needed; every pass with cw >= 1 finds the backends of positive weight.
	for passes := 0; passes <= s.mw/s.di+1; passes++ {
		if i := s.next(n); i >= 0 {
			s.cur = i
			return s.picked(s.dests[i])
		}
		s.cur = -1
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
		}
	}
	return Backend{}, false
}

// wrrScan is how far next looks linearly before it asks the tree.
const wrrScan = 16

// next is the first position after cur whose weight reaches cw, or -1.
func (s *wrr) next(n int) int {
	end := min(s.cur+1+wrrScan, n)
	for i := s.cur + 1; i < end; i++ {
		if int(s.weights[i]) >= s.cw {
			return i
		}
	}
	return s.tree.first(end, int32(s.cw))
}

// maxTree is a segment tree of maxima over the weights, for "first position at or
// after i with weight >= w".
type maxTree struct {
	size int // leaves, a power of two
	v    []int32
}

func (t *maxTree) build(ws []int32) {
	t.size = 1
	for t.size < len(ws) {
		t.size *= 2
	}
	t.v = append(t.v[:0], make([]int32, 2*t.size)...)
	copy(t.v[t.size:], ws)
	for i := t.size - 1; i >= 1; i-- {
		t.v[i] = max(t.v[2*i], t.v[2*i+1])
	}
}

func (t *maxTree) first(from int, w int32) int {
	if from >= t.size {
		return -1
	}
	i := from + t.size
	if t.v[i] < w {
		// Climb until a right sibling holds a match, then descend to its leftmost.
		for {
			if i == 1 {
				return -1
			}
			if i&1 == 0 && t.v[i+1] >= w {
				i++
				break
			}
			i >>= 1
		}
		for i < t.size {
			i *= 2
			if t.v[i] < w {
				i++
			}
		}
	}
	return i - t.size
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
