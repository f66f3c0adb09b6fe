package iptables

import (
	"net/netip"
	"time"

	"kproxy.dev/kproxy/internal/state"
)

// A partial sync re-renders a changed ServicePort whole. For a port with more
// than bucketAbove endpoints that meant rendering and naming every KUBE-SEP chain
// and every bucket chain again when one endpoint moved (issue 16). The render of
// such a port keeps its names and chains indexed (renderReuse), and the next
// partial sync's render takes from it every chain that comes out the same:
//
//   - a KUBE-SEP chain depends only on the port (name, protocol, affinity) and its
//     endpoint, so an endpoint that stays keeps its chain and its name (no hash);
//   - a bucket chain lists its endpoints' KUBE-SEP chains in order with
//     probabilities that depend only on their count, so it is reused when it jumps
//     to the same chains in the same order.
//
// Rendered chains are never modified, so old and new ServiceRules share them, and
// the diff finds them equal without comparing their rules (sameChainRules).

// renderReuse is what a large port's render keeps for the next one.
type renderReuse struct {
	// affinity is the port's session affinity timeout, which KUBE-SEP chains
	// depend on; every other input of a chain is in its name.
	affinity time.Duration
	seps     []sepName
	sepAt    map[netip.AddrPort]int
	chains   []Chain
	chainAt  map[string]int
}

// fits reports whether chains of r can be reused for a render of sp (r may be nil).
func (r *renderReuse) fits(sp *state.ServicePort) bool {
	return r != nil && r.affinity == sp.AffinityTimeout
}

// sep returns an endpoint's names from the previous render.
func (r *renderReuse) sep(ap netip.AddrPort) (sepName, bool) {
	if r == nil || r.sepAt == nil {
		return sepName{}, false
	}
	i, ok := r.sepAt[ap]
	if !ok {
		return sepName{}, false
	}
	return r.seps[i], true
}

// chain returns a chain of the previous render by name.
func (r *renderReuse) chain(name string) (Chain, bool) {
	if r.chainAt != nil {
		i, ok := r.chainAt[name]
		if !ok {
			return Chain{}, false
		}
		return r.chains[i], true
	}
	for _, c := range r.chains {
		if c.Name == name {
			return c, true
		}
	}
	return Chain{}, false
}

// take adds chain c of the previous render to this one. Its rules cannot be
// appended to in place (the capacity is clipped).
func (s *svcRender) take(c Chain) {
	c.Rules = c.Rules[:len(c.Rules):len(c.Rules)]
	s.addChain(c)
}

// reuseChain takes the KUBE-SEP chain name from the previous render, if there.
func (s *svcRender) reuseChain(name string) bool {
	if s.prev == nil || s.chainIndex(name) >= 0 {
		return false
	}
	c, ok := s.prev.chain(name)
	if ok {
		s.take(c)
	}
	return ok
}

// reuseBucket takes bucket chain name from the previous render when it jumps to
// the same endpoint chains, in the same order, as the bucket's members m
// (indices into seps) would have it.
func (s *svcRender) reuseBucket(name string, m []int32, seps []string) bool {
	if s.prev == nil || s.chainIndex(name) >= 0 {
		return false
	}
	c, ok := s.prev.chain(name)
	if !ok || len(c.Rules) != len(m) {
		return false
	}
	for j, r := range c.Rules {
		if jumpTarget(r) != seps[m[j]] {
			return false
		}
	}
	s.take(c)
	return true
}

// keepForReuse keeps the names and chains of a port with more than bucketAbove
// endpoints for the next render.
func (s *svcRender) keepForReuse(endpoints int) {
	if endpoints <= bucketAbove {
		return
	}
	s.out.reuse = &renderReuse{affinity: s.sp.AffinityTimeout, seps: s.seps, sepAt: s.sepAt,
		chains: s.out.Chains, chainAt: s.chainAt}
}
