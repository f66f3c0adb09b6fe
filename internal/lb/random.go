package lb

import (
	"math/rand/v2"
	"sort"
)

func init() { Register("random", newRandom) }

// random picks a backend at random, each with probability weight/total among the
// backends of weight > 0. It is not an IPVS scheduler: it is what the iptables and
// nftables modes do in the kernel (statistic/numgen random), registered so that the
// kproxy.dev/scheduler: random annotation validates in every mode and the userspace
// mode behaves like the kernel ones.
type random struct {
	pool
	// cum[i] is the summed weight of live[0..i]; a uniform draw in [0, total)
	// lands in backend live[i] with probability weight/total.
	cum  []int
	live []*dest
}

func newRandom(Options) (Scheduler, error) { return &random{}, nil }

func (s *random) Name() string { return "random" }

func (s *random) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replace(bs)
	s.cum, s.live = s.cum[:0], s.live[:0]
	total := 0
	for _, d := range s.dests {
		if d.available() {
			total += d.Weight
			s.cum = append(s.cum, total)
			s.live = append(s.live, d)
		}
	}
}

func (s *random) Pick(ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.cum)
	if n == 0 {
		return Backend{}, false
	}
	r := rand.IntN(s.cum[n-1])
	i := sort.SearchInts(s.cum, r+1)
	return s.picked(s.live[i])
}
