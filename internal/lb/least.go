package lb

// least is the shared body of the least-connection family (lc, wlc, sed, nq): they
// differ only in how a destination's load is computed.
type least struct {
	pool
	name string
	idx  *loadIndex
}

func newLeast(name string, key func(d *dest) (ratio, bool)) *least {
	s := &least{name: name, idx: newLoadIndex(key)}
	s.changed = s.idx.place
	return s
}

func (s *least) Name() string { return s.name }

func (s *least) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.replace(bs) {
		s.idx.remove(d)
	}
	for _, d := range s.dests {
		s.idx.place(d)
	}
}

func (s *least) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.idx.min()
	if d == nil {
		return Backend{}, false
	}
	return s.picked(d)
}
