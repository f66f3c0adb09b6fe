package iptables

import "kproxy.dev/kproxy/internal/state"

// Folded endpoints (issue 16). kube-proxy gives every endpoint a KUBE-SEP chain:
// a hairpin rule (-s <endpoint> -j KUBE-MARK-MASQ) and the DNAT. The hairpin rule
// can only match traffic that comes from the endpoint itself, and traffic from a
// pod on another node to a ClusterIP is DNATed on that pod's own node, never here.
// So an endpoint on another node (its nodeName known and not this node's) needs
// no chain of its own: the choice rule that would jump to its KUBE-SEP chain
// DNATs instead,
//
//	-p tcp -m comment --comment "ns/svc:port -> ip:port" -m statistic --mode random --probability p -j DNAT --to-destination ip:port
//
// (the last one without the statistic match). iptables-nft-restore's chain
// lookups make a cold sync grow with the square of the number of chains
// (docs/performance.md); folding leaves about one chain per Service instead of
// one per endpoint, and a smaller table for nf_tables to validate on every
// commit.
//
// Endpoints keep their KUBE-SEP chain when they are local (the hairpin rule is
// needed), when their node is unknown, and in every Service with ClientIP
// affinity (the recent match names the chain). A Service with eTP=Local and a
// pod CIDR keeps them too: its KUBE-EXT chain sends pod traffic (from any node,
// for this node's NodePort) into KUBE-SVC unmasqueraded, so a remote pod can be
// chosen as its own endpoint here and must be hairpin-masqueraded.
//
// Folding applies to a Service whose KUBE-SVC chain has more than bucketAbove
// endpoints (already a layout of kproxy's own) and, once the node's endpoints
// number more than foldAbove, to every Service (RenderConfig.FoldRemote, decided
// by the Proxier with foldWanted).

// foldAbove is the number of endpoints on the node (all Services) above which
// every Service's remote endpoints are folded. Below it the layout is kube-proxy's
// (Services above bucketAbove aside). A variable so that tests can lower it.
var foldAbove = 20000

// foldWanted reports whether a node with this many endpoints folds, given whether
// it folds now: it starts above foldAbove and stops only at 7/8 of it or fewer, so that
// a cluster hovering around the threshold does not switch layouts (a full sync
// each time) back and forth.
func foldWanted(endpoints int, now bool) bool {
	if now {
		return endpoints > foldAbove-foldAbove/8
	}
	return endpoints > foldAbove
}

// snapshotEndpoints counts the endpoints of every Service of a snapshot (as
// ServiceRules.endpoints counts them, so that partial syncs can keep the sum).
func snapshotEndpoints(snap *state.Snapshot) int {
	n := 0
	for name := range snap.All() {
		n += len(snap.EndpointsOf(name))
	}
	return n
}

// foldsRemote reports whether this port folds its remote endpoints.
func (s *svcRender) foldsRemote(p policies, cat state.Categorized) bool {
	if s.sp.AffinityTimeout > 0 || s.node == "" {
		return false
	}
	if !s.rc.cfg.FoldRemote && len(cat.Cluster) <= bucketAbove {
		return false
	}
	if p.usesExternal && s.sp.ExternalPolicyLocal && p.usesCluster && s.rc.cfg.podTrafficDetected() {
		return false
	}
	return true
}

// folded reports whether an endpoint of this port has no KUBE-SEP chain.
func (s *svcRender) folded(ep state.Endpoint) bool {
	return s.fold && !ep.IsLocal && ep.NodeName != "" && ep.NodeName != s.node
}

// foldedRule is a folded endpoint's rule in a choice chain: the choice and the
// DNAT in one. prob "" is the last rule's (no statistic match).
func (s *svcRender) foldedRule(text, prob string) string {
	c := s.spec().proto(s.proto).comment(s.name, " -> ", text)
	if prob != "" {
		c.add("-m", "statistic", "--mode", "random", "--probability", prob)
	}
	return c.jump("DNAT", "--to-destination", text)
}

// choiceTarget is what a choice rule for ep ends in: its KUBE-SEP chain, or ""
// (with its address text) when it is folded. Folded endpoints of a small port
// are never hashed.
func (s *svcRender) choiceTarget(ep state.Endpoint) (text, sep string) {
	if !s.folded(ep) {
		return s.sep(ep)
	}
	if s.names != nil {
		text, _ = s.sep(ep)
		return text, ""
	}
	t := s.spec()
	t.a.reserve(&t.start, 64)
	t.a.chunk = ep.AddrPort().AppendTo(t.a.chunk)
	return t.str(), ""
}

// podTrafficDetected reports whether the config knows a pod CIDR of this family
// (KUBE-EXT's "pod traffic" short-circuit exists).
func (c RenderConfig) podTrafficDetected() bool {
	for _, cidr := range c.ClusterCIDRs {
		if c.inFamily(cidr.Addr()) {
			return true
		}
	}
	return false
}
