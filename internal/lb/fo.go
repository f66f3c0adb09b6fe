package lb

func init() { Register("fo", func(Options) (Scheduler, error) { return &fo{}, nil }) }

// fo is weighted failover (ip_vs_fo): every new connection goes to the available
// backend with the highest weight (the first of equals), regardless of load. Lower
// weights are standbys that take over when the higher ones are removed or set to 0.
type fo struct {
	pool
	best *dest
}

func (s *fo) Name() string { return "fo" }

func (s *fo) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	// Choices depend on weights only, which change only here.
	s.best = nil
	for _, d := range s.dests {
		if d.available() && (s.best == nil || d.Weight > s.best.Weight) {
			s.best = d
		}
	}
}

func (s *fo) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.best == nil {
		return Backend{}, false
	}
	return s.picked(s.best)
}
