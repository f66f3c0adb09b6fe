package lb

func init() { Register("wrr", func(Options) (Scheduler, error) { return &wrr{}, nil }) }

// wrr is weighted round robin with the kernel's interleaving (ip_vs_wrr): pass after
// pass over the backend list, a backend is taken when its weight is at least the
// current weight cw; cw starts at the maximum weight and drops by the gcd of the
// weights after each pass. Weights {4,3,2} give A AB ABC ABC, repeated, rather than a
// naive AAAABBBCC burst.
type wrr struct {
	pool
	weights []int32 // by position, for a cache-friendly scan
	cur     int     // position of the last pick; -1 is the list head
	cw      int     // current weight
	mw      int     // maximum weight, lowered by gcd-1 like the kernel's mark->mw
	di      int     // gcd of the positive weights
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
		for i := s.cur + 1; i < n; i++ {
			if int(s.weights[i]) >= s.cw {
				s.cur = i
				return s.picked(s.dests[i])
			}
		}
		s.cur = -1
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
		}
	}
	return Backend{}, false
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
