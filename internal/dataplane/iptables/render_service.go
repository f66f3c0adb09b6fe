package iptables

import (
	"net/netip"
	"strconv"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// svcRender holds what the rules of one ServicePort share.
type svcRender struct {
	rc    *renderCtx
	sp    *state.ServicePort
	name  string // "ns/name:port", the comment on every rule
	proto string // "tcp", "udp", "sctp"
	ch    portChains
	out   *ServiceRules
	// The port's addresses of the family being rendered (RenderConfig.IPv6).
	clusterIPs, externalIPs, lbIPs []netip.Addr
	seps                           []sepName
	// chainAt and sepAt index out.Chains and seps by name once they outgrow a
	// short scan: a Service with n endpoints has n+2 chains, and scanning them for
	// every rule made the render quadratic (issue 16).
	chainAt map[string]int
	sepAt   map[netip.AddrPort]int
	// prev is the previous render of this port, whose chains an endpoint that
	// stays reuses (render_reuse.go); nil on a full render.
	prev *renderReuse
	// names, for a port with more than bucketAbove endpoints, holds every
	// endpoint's names and KUBE-SEP chain across renders (render_reuse.go); seps
	// and sepAt are then not used.
	names *sepCache
	// node is this node's name; fold is whether endpoints on other nodes are
	// folded into the choice rules (render_fold.go).
	node string
	fold bool
}

// scanLimit is the length up to which chains and endpoint names are found by a
// scan, cheaper than a map for the few chains of a typical Service.
const scanLimit = 8

type sepName struct {
	ep   netip.AddrPort
	text string // "ip:port"
	name string
	// chain is the endpoint's KUBE-SEP rules once rendered (sepCache only).
	chain []string
}

func (s *svcRender) spec() *spec { return s.rc.a.spec() }

// sep returns the endpoint's address text and chain name, computed once.
func (s *svcRender) sep(ep state.Endpoint) (text, name string) {
	ap := ep.AddrPort()
	if s.names != nil {
		if n := s.names.at[ap]; n != nil {
			return n.text, n.name
		}
	} else if i := s.sepIndex(ap); i >= 0 {
		return s.seps[i].text, s.seps[i].name
	}
	t := s.spec()
	t.a.reserve(&t.start, 64)
	t.a.chunk = ap.AppendTo(t.a.chunk)
	text = t.str()
	c := s.spec()
	c.a.reserve(&c.start, 64)
	c.a.chunk = appendHashName(c.a.chunk, prefixSep, s.name, s.proto, text)
	name = c.str()
	if s.names != nil {
		s.names.at[ap] = &sepName{ep: ap, text: text, name: name}
		return text, name
	}
	s.addSep(sepName{ep: ap, text: text, name: name})
	return text, name
}

// addSep records an endpoint's names and indexes them.
func (s *svcRender) addSep(n sepName) {
	s.seps = append(s.seps, n)
	switch {
	case s.sepAt != nil:
		s.sepAt[n.ep] = len(s.seps) - 1
	case len(s.seps) > scanLimit:
		s.sepAt = make(map[netip.AddrPort]int, max(2*len(s.seps), cap(s.out.Chains)))
		for i, x := range s.seps {
			s.sepAt[x.ep] = i
		}
	}
}

func (s *svcRender) sepIndex(ap netip.AddrPort) int {
	if s.sepAt != nil {
		if i, ok := s.sepAt[ap]; ok {
			return i
		}
		return -1
	}
	for i := range s.seps {
		if s.seps[i].ep == ap {
			return i
		}
	}
	return -1
}

// chainIndex finds a chain of this ServicePort in out.Chains, -1 if absent.
func (s *svcRender) chainIndex(name string) int {
	if s.chainAt != nil {
		if i, ok := s.chainAt[name]; ok {
			return i
		}
		return -1
	}
	for i := range s.out.Chains {
		if s.out.Chains[i].Name == name {
			return i
		}
	}
	return -1
}

// addChain appends a chain and indexes it.
func (s *svcRender) addChain(c Chain) int {
	s.out.Chains = append(s.out.Chains, c)
	i := len(s.out.Chains) - 1
	switch {
	case s.chainAt != nil:
		s.chainAt[c.Name] = i
	case len(s.out.Chains) > scanLimit:
		s.chainAt = make(map[string]int, max(2*len(s.out.Chains), cap(s.out.Chains)))
		for j := range s.out.Chains {
			s.chainAt[s.out.Chains[j].Name] = j
		}
	}
	return i
}

// chain declares a chain of this ServicePort (empty chains are valid) with room for
// the rules it will get.
func (s *svcRender) chain(name string, rules int) {
	if s.chainIndex(name) < 0 {
		s.addChain(Chain{Table: tableNAT, Name: name, Rules: make([]string, 0, rules)})
	}
}

// rule appends to a chain, declaring it if needed.
func (s *svcRender) rule(chain, spec string) {
	if i := s.chainIndex(chain); i >= 0 {
		s.out.Chains[i].Rules = append(s.out.Chains[i].Rules, spec)
		return
	}
	s.addChain(Chain{Table: tableNAT, Name: chain, Rules: []string{spec}})
}

func (s *svcRender) dispatch(table, chain, spec string) {
	s.out.Dispatch = append(s.out.Dispatch, DispatchRule{Table: table, Chain: chain, Spec: spec})
}

// service renders one ServicePort, following kube-proxy's iptables proxier: the
// endpoint sets come from state's categorisation, never from here.
func (rc *renderCtx) service(req *dataplane.Request, n state.ServicePortName) *ServiceRules {
	return rc.serviceAfter(req, n, nil)
}

// serviceAfter renders one ServicePort whose previous render (with the same
// RenderConfig) was prev, which may be nil: chains that come out the same are
// taken from prev instead of being rendered again (render_reuse.go).
func (rc *renderCtx) serviceAfter(req *dataplane.Request, n state.ServicePortName, prev *ServiceRules) *ServiceRules {
	snap := req.Snapshot
	sp, eps := snap.Port(n)
	cfg := rc.cfg
	s := &svcRender{rc: rc, sp: sp, name: portString(n), proto: lowerProto(n), out: &ServiceRules{endpoints: len(eps)},
		node: snap.Node.Name, clusterIPs: cfg.addrs(sp.ClusterIPs), externalIPs: cfg.addrs(sp.ExternalIPs), lbIPs: cfg.addrs(sp.LoadBalancerIPs)}
	if prev != nil && prev.reuse.fits(sp) {
		s.prev = prev.reuse
		s.names = prev.reuse.names
	} else if len(snap.EndpointsOf(n)) > bucketAbove {
		s.names = newSepCache(sp, len(snap.EndpointsOf(n)))
	}
	if len(s.clusterIPs) == 0 {
		// As kube-proxy: a family's proxier ignores Services without a ClusterIP
		// of its family (single-stack Services of the other family), NodePorts
		// included.
		return s.out
	}
	s.ch = chainsIn(rc.a, s.name, s.proto)
	s.out.Chains = make([]Chain, 0, 2+len(snap.EndpointsOf(n)))
	cat := rc.endpoints(req, n)
	p := s.policies(cat)
	s.fold = s.foldsRemote(p, cat)
	s.dispatchRules(p)
	if p.usesCluster {
		s.policyChain(s.ch.svc, p, cat.Cluster)
	}
	if p.usesLocal {
		s.policyChain(s.ch.svl, p, cat.Local)
	}
	if p.usesExternal {
		s.externalChain(p)
	}
	if p.usesFW {
		s.firewallChain()
	}
	for _, ep := range cat.AllReachable {
		if !s.folded(ep) {
			s.endpointChain(ep)
		}
	}
	s.keepForReuse(len(cat.AllReachable))
	return s.out
}

// endpoints categorises the port's endpoints of the rendered family only, as
// kube-proxy's per-family proxiers see them: an IPv6 endpoint never reaches the
// IPv4 rules, and the ready/terminating fallback is decided within the family.
// The core's shared categorisation is used when every endpoint is of the family.
func (rc *renderCtx) endpoints(req *dataplane.Request, n state.ServicePortName) state.Categorized {
	snap := req.Snapshot
	all := snap.EndpointsOf(n)
	eps := rc.cfg.endpoints(all)
	if len(eps) == len(all) {
		return req.Endpoints(n)
	}
	return state.CategorizeEndpoints(snap.Service(n), eps, snap.Node)
}

var addrtypeLocal = []string{"-m", "addrtype", "--dst-type", "LOCAL"}

// policies is what kube-proxy's syncProxyRules derives per ServicePort.
type policies struct {
	usesCluster, usesLocal, usesExternal, usesFW bool
	internalChain, externalPolicyChain           string
	hasInternal, hasExternal                     bool
	internalFilter, externalFilter               string // REJECT or DROP when traffic has nowhere to go
	internalComment, externalComment             string
}

func (s *svcRender) policies(cat state.Categorized) policies {
	sp := s.sp
	p := policies{
		usesCluster:         len(cat.Cluster) > 0 && sp.UsesClusterEndpoints(),
		usesLocal:           len(cat.Local) > 0 && sp.UsesLocalEndpoints(),
		internalChain:       s.ch.svc,
		externalPolicyChain: s.ch.svc,
		hasInternal:         len(cat.Cluster) > 0,
		hasExternal:         len(cat.Cluster) > 0,
	}
	if sp.InternalPolicyLocal {
		p.internalChain, p.hasInternal = s.ch.svl, len(cat.Local) > 0
	}
	if sp.ExternalPolicyLocal {
		p.externalPolicyChain, p.hasExternal = s.ch.svl, len(cat.Local) > 0
	}
	// As kube-proxy: external addresses lead into KUBE-EXT whenever the Service has
	// endpoints anywhere, even under eTP Local without a local one, so that pods
	// and the node short-circuit to the cluster-wide endpoints; outside traffic
	// falls through KUBE-EXT and is dropped in filter KUBE-EXTERNAL-SERVICES.
	p.usesExternal = len(cat.AllReachable) > 0 && sp.ExternallyAccessible()
	p.usesFW = p.usesExternal && len(s.lbIPs) > 0 && len(sp.LoadBalancerSourceRanges) > 0
	p.internalFilter, p.internalComment = filterTarget(s.rc.cfg, cat.HasAny, p.hasInternal, s.name)
	p.externalFilter, p.externalComment = filterTarget(s.rc.cfg, cat.HasAny, p.hasExternal, s.name)
	return p
}

// filterTarget is what the filter table does with traffic that has no endpoint:
// REJECT when the Service has none at all (clients fail fast), DROP when only this
// node has none under a Local policy (the load balancer should go elsewhere).
func filterTarget(cfg RenderConfig, hasAny, has bool, name string) (string, string) {
	switch {
	case !hasAny:
		return cfg.rejectTarget(), name + " has no endpoints"
	case !has:
		return "DROP", name + " has no local endpoints"
	}
	return "", ""
}

// port completes a rule that matches the Service's protocol and a port, in the order
// iptables-save prints it: addresses (already in c), protocol, comment, extra
// matches, port.
func (s *svcRender) port(c *spec, port int32, extra []string, comment ...string) *spec {
	return c.proto(s.proto).comment(comment...).add(extra...).dport(s.proto, port)
}

func (s *svcRender) dispatchRules(p policies) {
	sp := s.sp
	for _, ip := range s.clusterIPs {
		if p.hasInternal {
			s.dispatch(tableNAT, chainServices, s.port(s.spec().dst(ip), sp.Port, nil, s.name, " cluster IP").jump(p.internalChain))
		} else {
			s.dispatch(tableFilter, chainServices, s.port(s.spec().dst(ip), sp.Port, nil, p.internalComment).jump(p.internalFilter))
		}
	}
	for _, ip := range s.externalIPs {
		if p.usesExternal {
			s.dispatch(tableNAT, chainServices, s.port(s.spec().dst(ip), sp.Port, nil, s.name, " external IP").jump(s.ch.ext))
		}
		if !p.hasExternal {
			s.dispatch(tableFilter, chainExternalServices, s.port(s.spec().dst(ip), sp.Port, nil, p.externalComment).jump(p.externalFilter))
		}
	}
	lbTarget := s.ch.ext
	if p.usesFW {
		lbTarget = s.ch.fw
	}
	for _, ip := range s.lbIPs {
		if p.usesExternal {
			s.dispatch(tableNAT, chainServices, s.port(s.spec().dst(ip), sp.Port, nil, s.name, " loadbalancer IP").jump(lbTarget))
		}
		if !p.hasExternal {
			s.dispatch(tableFilter, chainExternalServices, s.port(s.spec().dst(ip), sp.Port, nil, p.externalComment).jump(p.externalFilter))
		}
		if p.usesFW {
			// Traffic the KUBE-FW chain did not accept falls through to here.
			s.dispatch(tableFilter, chainProxyFirewall, s.port(s.spec().dst(ip), sp.Port, nil, s.name, " traffic not accepted by ", s.ch.fw).jump("DROP"))
		}
	}
	if sp.NodePort != 0 {
		if p.usesExternal {
			s.dispatch(tableNAT, chainNodePorts, s.port(s.spec(), sp.NodePort, nil, s.name).jump(s.ch.ext))
		}
		if !p.hasExternal {
			s.dispatch(tableFilter, chainExternalServices, s.port(s.spec(), sp.NodePort, addrtypeLocal, p.externalComment).jump(p.externalFilter))
		}
	}
	if sp.HealthCheckNodePort != 0 {
		s.dispatch(tableFilter, chainNodePorts, s.spec().proto("tcp").comment(s.name, " health check node port").dport("tcp", sp.HealthCheckNodePort).jump("ACCEPT"))
	}
}

// policyChain is KUBE-SVC (Cluster policy) or KUBE-SVL (Local policy). The chain
// ClusterIP traffic goes to (internalChain, which is KUBE-SVL under iTP Local) first
// masquerades what needs it, as kube-proxy does: off-cluster traffic to the
// ClusterIP (a node, or a client routing the Service range to this node) must come
// back here, whichever endpoints the policy allows. Then an endpoint is chosen.
func (s *svcRender) policyChain(chain string, p policies, eps []state.Endpoint) {
	cfg := s.rc.cfg
	s.chain(chain, s.choiceRules(len(eps))+len(s.clusterIPs)*max(1, len(cfg.ClusterCIDRs)))
	if chain == p.internalChain && p.hasInternal {
		s.clusterIPMasq(chain)
	}
	s.endpointChoice(chain, eps)
}

func (s *svcRender) clusterIPMasq(chain string) {
	cfg := s.rc.cfg
	for _, ip := range s.clusterIPs {
		switch {
		case cfg.MasqueradeAll:
			s.rule(chain, s.port(s.spec().dst(ip), s.sp.Port, nil, s.name, " cluster IP").jump(chainMarkMasq))
		case len(cfg.ClusterCIDRs) > 0:
			for _, cidr := range cfg.ClusterCIDRs {
				if cfg.inFamily(cidr.Addr()) {
					s.rule(chain, s.port(s.spec().src(cidr, true).dst(ip), s.sp.Port, nil, s.name, " cluster IP").jump(chainMarkMasq))
				}
			}
		}
	}
}

// endpointChoice spreads new connections: endpoint i of n matches with probability
// 1/(n-i), the last unconditionally, or, past bucketAbove endpoints, through
// bucket chains (bucketChoice). ClientIP affinity first sends a client back to the
// endpoint it used recently (those checks stay in the policy chain, one per
// endpoint, ahead of the choice).
func (s *svcRender) endpointChoice(chain string, eps []state.Endpoint) {
	s.chain(chain, s.choiceRules(len(eps)))
	if s.sp.AffinityTimeout > 0 {
		secs := strconv.Itoa(int(s.sp.AffinityTimeout.Seconds()))
		for _, ep := range eps {
			text, sep := s.sep(ep)
			s.rule(chain, s.spec().comment(s.name, " -> ", text).add("-m", "recent", "--rcheck", "--seconds", secs, "--reap", "--name", sep, "--mask", s.rc.cfg.recentMask(), "--rsource").jump(sep))
		}
	}
	if len(eps) > bucketAbove {
		s.bucketChoice(chain, eps)
		return
	}
	s.flatChoice(chain, len(eps), func(i int) (string, string) { return s.choiceTarget(eps[i]) })
}

// flatChoice jumps to endpoint i of n (at(i) is its address text and KUBE-SEP
// chain, "" when it is folded) with probability 1/(n-i), the last
// unconditionally: kube-proxy's layout. A folded endpoint's rule DNATs itself.
func (s *svcRender) flatChoice(chain string, n int, at func(int) (text, sep string)) {
	for i := 0; i < n; i++ {
		text, sep := at(i)
		prob := ""
		if i < n-1 {
			prob = s.rc.probability(n - i)
		}
		if sep == "" {
			s.rule(chain, s.foldedRule(text, prob))
			continue
		}
		c := s.spec().comment(s.name, " -> ", text)
		if prob != "" {
			c.add("-m", "statistic", "--mode", "random", "--probability", prob)
		}
		s.rule(chain, c.jump(sep))
	}
}

// externalChain is KUBE-EXT: the entry for NodePort, external and LB traffic.
func (s *svcRender) externalChain(p policies) {
	ext := s.ch.ext
	s.chain(ext, 4+len(s.rc.cfg.ClusterCIDRs))
	if !s.sp.ExternalPolicyLocal {
		// Endpoints may be on other nodes: masquerade so replies come back here.
		s.rule(ext, s.spec().comment("masquerade traffic for ", s.name, " external destinations").jump(chainMarkMasq))
	} else if p.usesCluster {
		// Pods and the node itself reaching an external address are served by any
		// endpoint, as if they had gone out to the load balancer and back.
		for _, cidr := range s.rc.cfg.ClusterCIDRs {
			if s.rc.cfg.inFamily(cidr.Addr()) {
				s.rule(ext, s.spec().src(cidr, false).comment("pod traffic for ", s.name, " external destinations").jump(s.ch.svc))
			}
		}
		s.rule(ext, s.spec().comment("masquerade LOCAL traffic for ", s.name, " external destinations").add("-m", "addrtype", "--src-type", "LOCAL").jump(chainMarkMasq))
		s.rule(ext, s.spec().comment("route LOCAL traffic for ", s.name, " external destinations").add("-m", "addrtype", "--src-type", "LOCAL").jump(s.ch.svc))
	}
	if p.hasExternal {
		s.rule(ext, s.spec().jump(p.externalPolicyChain))
	}
}

// firewallChain is KUBE-FW: only the source ranges (and the LB's own addresses)
// continue to KUBE-EXT; the rest falls through to a DROP in KUBE-PROXY-FIREWALL.
func (s *svcRender) firewallChain() {
	fw := s.ch.fw
	s.chain(fw, len(s.sp.LoadBalancerSourceRanges)+len(s.lbIPs))
	// Source ranges of the other family allow nothing here: a Service whose
	// ranges are all IPv4 is closed on its IPv6 LB IPs, not open to everyone.
	for _, r := range s.rc.cfg.prefixes(s.sp.LoadBalancerSourceRanges) {
		s.rule(fw, s.spec().src(r, false).comment(s.name, " loadbalancer IP").jump(s.ch.ext))
	}
	for _, ip := range s.lbIPs {
		s.rule(fw, s.spec().addrFlag("-s", ip).comment(s.name, " loadbalancer IP").jump(s.ch.ext))
	}
}

// endpointChain is KUBE-SEP: masquerade hairpin traffic and DNAT.
func (s *svcRender) endpointChain(ep state.Endpoint) {
	text, sep := s.sep(ep)
	if s.reuseChain(ep.AddrPort(), sep) {
		return
	}
	defer s.keepChain(ep.AddrPort(), sep)
	s.chain(sep, 2)
	s.rule(sep, s.spec().addrFlag("-s", ep.IP).comment(s.name).jump(chainMarkMasq))
	c := s.spec().proto(s.proto).comment(s.name)
	if s.sp.AffinityTimeout > 0 {
		c.add("-m", "recent", "--set", "--name", sep, "--mask", s.rc.cfg.recentMask(), "--rsource")
	}
	c.add("-m", s.proto)
	s.rule(sep, c.jump("DNAT", "--to-destination", text))
}
