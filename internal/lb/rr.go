package lb

func init() { Register("rr", newRR) }

// rr is round robin (ip_vs_rr): each new connection goes to the next backend in
// turn, skipping backends of weight 0.
type rr struct {
	pool
	// next is the position the next search starts at.
	next int
}

func newRR(Options) (Scheduler, error) { return &rr{}, nil }

func (s *rr) Name() string { return "rr" }

func (s *rr) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last *dest
	if n := len(s.dests); n > 0 {
		last = s.dests[(s.next+n-1)%n]
	}
	s.replace(bs)
	// Carry on after the backend picked last if it stayed, so that an update does
	// not send a burst to the first backend.
	s.next = 0
	if last != nil {
		if s.live(last) {
			s.next = last.pos + 1
		}
	}
}

func (s *rr) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.dests)
	for i := 0; i < n; i++ {
		d := s.dests[(s.next+i)%n]
		if d.available() {
			s.next = (d.pos + 1) % n
			return s.picked(d)
		}
	}
	return Backend{}, false
}
