package lb

import (
	"fmt"
	"slices"
	"sync"
)

// DefaultMHTableSize is the userspace Maglev table size (a prime). The kernel's
// default (CONFIG_IP_VS_MH_TAB_INDEX=12) is 4093; kproxy's userspace table is
// larger so that thousands of backends still balance within a percent.
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
	// owners are the backends that own slots; a slot holds an index into owners,
	// 16 bits wide while there are at most 65536 owners (128 KB per Service at the
	// default size instead of 256 KB), 32 bits beyond.
	owners []*dest
	small  []uint16
	large  []int32
	// built is the backend list the table was built from: an Update with the same
	// list keeps the table instead of spending a rebuild.
	built []Backend
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
	if s.built != nil && slices.Equal(bs, s.built) {
		return
	}
	s.replace(bs)
	s.built = slices.Clone(bs)
	sc := mhScratchPool.Get().(*mhScratch)
	defer mhScratchPool.Put(sc)
	slots := sc.populate(len(s.dests), func(i int) Backend { return s.dests[i].Backend }, s.size)
	s.owners = s.owners[:0]
	for _, i := range sc.live {
		s.owners = append(s.owners, s.dests[i])
	}
	s.small, s.large = s.small[:0], s.large[:0]
	if len(s.owners) <= 1<<16 {
		for _, o := range slots {
			s.small = append(s.small, uint16(o))
		}
	} else {
		s.large = append(s.large, slots...)
	}
}

// owner is the backend of a slot; the table is not empty.
func (s *mh) owner(slot int) *dest {
	if len(s.small) > 0 {
		return s.owners[s.small[slot]]
	}
	return s.owners[s.large[slot]]
}

// Permutation seeds; fixed so that all nodes build the same table.
const (
	mhSeedOffset = 0x6d68_6f66_6673_6574
	mhSeedSkip   = 0x6d68_736b_6970_7321
	mhSeedLookup = 0x6d68_6c6f_6f6b_7570
)

// mhScratch holds what a table build needs and the table does not, shared between
// all mh schedulers through a pool.
type mhScratch struct {
	next, skip, turns []uint32
	live              []int32
	slots             []int32
	// taken marks filled slots: 8 KB for 65537 slots stays in L1 cache while the
	// population loop probes it about M*ln(M) times, where probing the 256 KB
	// slot array itself would not.
	taken []uint64
}

var mhScratchPool = sync.Pool{New: func() any { return new(mhScratch) }}

// MaglevTable builds a Maglev lookup table of size slots (size must be a prime) over
// backends, the same table the mh scheduler uses: entry i is the index in backends
// of the backend owning slot i. Backends of weight 0 own no slot; weights count as
// turns, reduced by their gcd. It returns nil when no backend has a weight above
// zero. Permutations depend only on each backend's address and port, so every node
// builds the same table, and changing one backend moves few slots.
func MaglevTable(backends []Backend, size int) ([]int, error) {
	if !isPrime(size) {
		return nil, fmt.Errorf("maglev table size %d: must be a prime", size)
	}
	sc := mhScratchPool.Get().(*mhScratch)
	defer mhScratchPool.Put(sc)
	slots := sc.populate(len(backends), func(i int) Backend { return backends[i] }, size)
	if slots == nil {
		return nil, nil
	}
	out := make([]int, size)
	for i, j := range slots {
		out[i] = int(sc.live[j])
	}
	return out, nil
}

// populate runs the Maglev population loop over backends at(0..n-1), with weights as
// turns (weight divided by the gcd of the weights, so {2,2} behaves like {1,1}). It
// returns, per slot, the index in m.live of the owning backend, or nil when no
// backend can own one; m.live holds the indexes of the backends with weight > 0.
func (m *mhScratch) populate(n int, at func(i int) Backend, size int) []int32 {
	m.live, m.next, m.skip, m.turns = m.live[:0], m.next[:0], m.skip[:0], m.turns[:0]
	g := 0
	for i := range n {
		if b := at(i); b.Weight > 0 {
			m.live = append(m.live, int32(i))
			g = gcd(g, b.Weight)
		}
	}
	if len(m.live) == 0 {
		return nil
	}
	for _, i := range m.live {
		d := at(int(i))
		m.next = append(m.next, uint32(addrPortHash(d.Addr, true, mhSeedOffset)%uint64(size)))
		m.skip = append(m.skip, uint32(addrPortHash(d.Addr, true, mhSeedSkip)%uint64(size-1))+1)
		m.turns = append(m.turns, uint32(d.Weight/g))
	}
	table := slices.Grow(m.slots[:0], size)[:size]
	m.slots = table
	words := (size + 63) / 64
	m.taken = slices.Grow(m.taken[:0], words)[:words]
	clear(m.taken)
	filled := 0
	for {
		for j := range m.live {
			for t := uint32(0); t < m.turns[j]; t++ {
				c := m.next[j]
				for m.taken[c/64]&(1<<(c%64)) != 0 {
					c += m.skip[j]
					if c >= uint32(size) {
						c -= uint32(size)
					}
				}
				m.taken[c/64] |= 1 << (c % 64)
				table[c] = int32(j)
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
	if len(s.owners) == 0 {
		return Backend{}, false
	}
	if d := s.owner(s.slot(c, 0)); d.available() {
		return s.picked(d)
	}
	if !s.fallback {
		return Backend{}, false
	}
	for off := uint64(1); off < uint64(s.size); off++ {
		if d := s.owner(s.slot(c, off)); d.available() {
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
