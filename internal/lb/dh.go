package lb

func init() { Register("dh", func(Options) (Scheduler, error) { return &dh{}, nil }) }

// dh is destination hashing (ip_vs_dh): a static table maps the hash of the
// connection's destination address to a backend, round robin over the backend list,
// regardless of weight. When the mapped backend has weight 0 the connection is
// refused, as in the kernel: there is no fallback.
type dh struct {
	pool
	table []int32
	bits  uint
}

func (s *dh) Name() string { return "dh" }

func (s *dh) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.table = s.table[:0]
	if len(s.dests) == 0 {
		return
	}
	s.bits = tableBits(len(s.dests))
	for i := 0; i < 1<<s.bits; i++ {
		s.table = append(s.table, int32(i%len(s.dests)))
	}
}

func (s *dh) Pick(c ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.table) == 0 {
		return Backend{}, false
	}
	d := s.dests[s.table[bucketHash(fold(c.Dst.Addr()), s.bits)]]
	if !d.available() {
		return Backend{}, false
	}
	return s.picked(d)
}
