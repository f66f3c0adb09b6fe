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
	names   *sepCache
	chains  []Chain
	chainAt map[string]int
}

// sepCache holds the names and KUBE-SEP chain of every endpoint a large port's
// renders met, across renders: both depend only on the port (name, protocol,
// affinity) and the endpoint, so an entry never goes wrong, and one of an endpoint
// that left is merely unused (pruned when they outnumber the endpoints).
type sepCache struct {
	// affinity is the port's session affinity timeout, which KUBE-SEP chains
	// depend on; every other input is in the chain's name.
	affinity time.Duration
	at       map[netip.AddrPort]*sepName
}

func newSepCache(sp *state.ServicePort, size int) *sepCache {
	return &sepCache{affinity: sp.AffinityTimeout, at: make(map[netip.AddrPort]*sepName, size)}
}

// fits reports whether chains of r can be reused for a render of sp (r may be nil).
func (r *renderReuse) fits(sp *state.ServicePort) bool {
	return r != nil && r.names.affinity == sp.AffinityTimeout
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

// reuseChain adds the endpoint's KUBE-SEP chain name from the cache, if rendered
// before.
func (s *svcRender) reuseChain(ap netip.AddrPort, name string) bool {
	if s.names == nil {
		return false
	}
	n := s.names.at[ap]
	if n == nil || n.chain == nil || s.chainIndex(name) >= 0 {
		return false
	}
	s.take(Chain{Table: tableNAT, Name: name, Rules: n.chain})
	return true
}

// keepChain records the endpoint's KUBE-SEP chain name, just rendered, in the
// cache.
func (s *svcRender) keepChain(ap netip.AddrPort, name string) {
	if s.names == nil {
		return
	}
	if n, i := s.names.at[ap], s.chainIndex(name); n != nil && i >= 0 {
		n.chain = s.out.Chains[i].Rules
	}
}

// reuseBucket takes bucket chain name from the previous render when it jumps to
// the same endpoint chains (or DNATs to the same folded endpoints), in the same
// order, as the bucket's members m (indices into targets: a KUBE-SEP name, or
// the address of a folded endpoint, the last word of its DNAT rule) would have
// it.
func (s *svcRender) reuseBucket(name string, m []int32, targets []string) bool {
	if s.prev == nil || s.chainIndex(name) >= 0 {
		return false
	}
	c, ok := s.prev.chain(name)
	if !ok || len(c.Rules) != len(m) {
		return false
	}
	for j, r := range c.Rules {
		if jumpTarget(r) != targets[m[j]] {
			return false
		}
	}
	s.take(c)
	return true
}

// keepForReuse keeps the names and chains of a port with more than bucketAbove
// endpoints for the next render.
func (s *svcRender) keepForReuse(endpoints int) {
	if s.names == nil || endpoints <= bucketAbove {
		return
	}
	if len(s.names.at) > 2*endpoints+64 {
		s.names = s.names.pruned(s.out.Chains)
	}
	s.out.reuse = &renderReuse{names: s.names, chains: s.out.Chains, chainAt: s.chainAt}
}

// pruned is a cache of the entries whose KUBE-SEP chain is among chains.
func (c *sepCache) pruned(chains []Chain) *sepCache {
	live := make(map[string]bool, len(chains))
	for _, ch := range chains {
		live[ch.Name] = true
	}
	out := &sepCache{affinity: c.affinity, at: make(map[netip.AddrPort]*sepName, len(chains))}
	for ap, n := range c.at {
		if live[n.name] {
			out.at[ap] = n
		}
	}
	return out
}
