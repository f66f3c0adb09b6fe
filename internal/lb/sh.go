package lb

import "slices"

func init() {
	Register("sh", func(o Options) (Scheduler, error) {
		return &sh{fallback: slices.Contains(o.Flags, "sh-fallback"), port: slices.Contains(o.Flags, "sh-port")}, nil
	}, "sh-fallback", "sh-port")
}

// sh is source hashing (ip_vs_sh): a static table maps the hash of the client address
// (and port with sh-port) to a backend. Each backend fills as many consecutive buckets
// as its weight, round after round, so weights shape the split. A backend of weight 0
// keeps one bucket per round but refuses new connections; with sh-fallback the
// connection is rehashed to the next available backend instead.
type sh struct {
	pool
	fallback, port bool
	table          []int32
	bits           uint
	available      int // backends of positive weight
}

func (s *sh) Name() string { return "sh" }

func (s *sh) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.table = s.table[:0]
	if len(s.dests) == 0 {
		return
	}
	units := 0
	s.available = 0
	for _, d := range s.dests {
		units += max(d.Weight, 1)
		if d.available() {
			s.available++
		}
	}
	s.bits = tableBits(units)
	pos, count := 0, 0
	for i := 0; i < 1<<s.bits; i++ {
		s.table = append(s.table, int32(pos))
		count++
		if count >= s.dests[pos].Weight {
			pos, count = (pos+1)%len(s.dests), 0
		}
	}
}

func (s *sh) key(c ConnInfo, offset uint32) uint32 {
	k := fold(c.Src.Addr()) + offset
	if s.port {
		k += uint32(c.Src.Port()) << 16
	}
	return bucketHash(k, s.bits)
}

func (s *sh) Pick(c ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.table) == 0 {
		return Backend{}, false
	}
	h := s.key(c, 0)
	if d := s.dests[s.table[h]]; d.available() {
		return s.picked(d)
	}
	if !s.fallback || s.available == 0 {
		return Backend{}, false
	}
	// Like ip_vs_sh_get_fallback: rehash with growing offsets until an available
	// backend turns up; a full round of offsets means there is none.
	for off := uint32(0); off < uint32(len(s.table)); off++ {
		if d := s.dests[s.table[s.key(c, h+off)]]; d.available() {
			return s.picked(d)
		}
	}
	return Backend{}, false
}
