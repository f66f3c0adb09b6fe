package lb

import (
	"fmt"
	"slices"
)

// DefaultMHTableSize is the kernel's default Maglev table size (a prime).
const DefaultMHTableSize = 65537

func init() { Register("mh", newMH, "mh-fallback", "mh-port") }

// mh is Maglev hashing (ip_vs_mh, NSDI 2016): every backend has a pseudo-random
// permutation of the table slots and the backends take turns claiming their next free
// slot, weight-many claims per turn, until the table is full. The client address (and
// port with mh-port) hashes to a slot. Removing one of N backends moves little more
// than the 1/N share of clients that were on it.
//
// Backends of weight 0 get no slots, so a weight change reshapes the table like the
// kernel's upd_dest does. mh-fallback rehashes when the slot's backend cannot take
// connections; since kproxy has no overload state and rebuilds on every weight
// change, that only happens in ipvs mode's kernel, but the flag is accepted here so
// the same annotation works in every mode.
type mh struct {
	pool
	size           int
	fallback, port bool
	table          []int32 // slot -> position in dests
	scratch        mhScratch
}

func newMH(o Options) (Scheduler, error) {
	size := o.MHTableSize
	if size == 0 {
		size = DefaultMHTableSize
	}
	if size < 2 || !isPrime(size) {
		return nil, fmt.Errorf("mh table size %d: must be a prime (default %d)", size, DefaultMHTableSize)
	}
	return &mh{
		size:     size,
		fallback: slices.Contains(o.Flags, "mh-fallback"),
		port:     slices.Contains(o.Flags, "mh-port"),
	}, nil
}

func (s *mh) Name() string { return "mh" }

func (s *mh) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.table = s.scratch.populate(s.table, s.dests, s.size)
}

// Permutation seeds; fixed so that all nodes build the same table.
const (
	mhSeedOffset = 0x6d68_6f66_6673_6574
	mhSeedSkip   = 0x6d68_736b_6970_7321
	mhSeedLookup = 0x6d68_6c6f_6f6b_7570
)

// mhScratch keeps the per-build arrays between rebuilds to spare the allocations.
type mhScratch struct {
	next, skip, turns []uint32
	live              []int32
	// taken marks filled slots: 8 KB for 65537 slots stays in L1 cache while the
	// population loop probes it about M*ln(M) times, where probing the 256 KB
	// table itself would not.
	taken []uint64
}

// populate builds the lookup table: the Maglev population loop, with weights as
// turns (weight divided by the gcd of the weights, so {2,2} behaves like {1,1}).
func (m *mhScratch) populate(table []int32, ds []*dest, size int) []int32 {
	table = slices.Grow(table[:0], size)[:size]
	words := (size + 63) / 64
	m.taken = slices.Grow(m.taken[:0], words)[:words]
	clear(m.taken)
	m.live, m.next, m.skip, m.turns = m.live[:0], m.next[:0], m.skip[:0], m.turns[:0]
	g := 0
	for i, d := range ds {
		if d.available() {
			m.live = append(m.live, int32(i))
			g = gcd(g, d.Weight)
		}
	}
	if len(m.live) == 0 {
		return table[:0]
	}
	for _, i := range m.live {
		d := ds[i]
		m.next = append(m.next, uint32(addrPortHash(d.Addr, true, mhSeedOffset)%uint64(size)))
		m.skip = append(m.skip, uint32(addrPortHash(d.Addr, true, mhSeedSkip)%uint64(size-1))+1)
		m.turns = append(m.turns, uint32(d.Weight/g))
	}
	filled := 0
	for {
		for j, i := range m.live {
			for t := uint32(0); t < m.turns[j]; t++ {
				c := m.next[j]
				for m.taken[c/64]&(1<<(c%64)) != 0 {
					c += m.skip[j]
					if c >= uint32(size) {
						c -= uint32(size)
					}
				}
				m.taken[c/64] |= 1 << (c % 64)
				table[c] = i
				c += m.skip[j]
				if c >= uint32(size) {
					c -= uint32(size)
				}
				m.next[j] = c
				if filled++; filled == size {
					return table
				}
			}
		}
	}
}

func (s *mh) slot(c ConnInfo, offset uint64) int {
	return int((addrPortHash(c.Src, s.port, mhSeedLookup) + offset) % uint64(s.size))
}

func (s *mh) Pick(c ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.table) == 0 {
		return Backend{}, false
	}
	if d := s.dests[s.table[s.slot(c, 0)]]; d.available() {
		return s.picked(d)
	}
	if !s.fallback {
		return Backend{}, false
	}
	for off := uint64(1); off < uint64(s.size); off++ {
		if d := s.dests[s.table[s.slot(c, off)]]; d.available() {
			return s.picked(d)
		}
	}
	return Backend{}, false
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for f := 2; f*f <= n; f++ {
		if n%f == 0 {
			return false
		}
	}
	return true
}
