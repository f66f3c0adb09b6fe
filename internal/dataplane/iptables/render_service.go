package iptables

import (
	"strconv"
	"strings"

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
}

// chain declares a chain of this ServicePort (empty chains are valid).
func (s *svcRender) chain(name string) {
	for i := range s.out.Chains {
		if s.out.Chains[i].Name == name {
			return
		}
	}
	s.out.Chains = append(s.out.Chains, Chain{Table: tableNAT, Name: name})
}

// rule appends to a chain; a ServicePort has a handful of chains, so a scan is
// cheaper than a map.
func (s *svcRender) rule(chain, spec string) {
	for i := range s.out.Chains {
		if s.out.Chains[i].Name == chain {
			s.out.Chains[i].Rules = append(s.out.Chains[i].Rules, spec)
			return
		}
	}
	s.out.Chains = append(s.out.Chains, Chain{Table: tableNAT, Name: chain, Rules: []string{spec}})
}

func (s *svcRender) dispatch(table, chain, spec string) {
	s.out.Dispatch = append(s.out.Dispatch, DispatchRule{Table: table, Chain: chain, Spec: spec})
}

// service renders one ServicePort, following kube-proxy's iptables proxier: the
// endpoint sets come from state's categorisation, never from here.
func (rc *renderCtx) service(snap *state.Snapshot, n state.ServicePortName) *ServiceRules {
	sp := snap.Services[n]
	s := &svcRender{rc: rc, sp: sp, name: n.String(), proto: strings.ToLower(string(sp.Protocol)),
		ch: chainsFor(n), out: &ServiceRules{}}
	cat := snap.Categorize(n)
	p := s.policies(cat)
	s.dispatchRules(p)
	if p.usesCluster {
		s.clusterChain(cat.Cluster)
	}
	if p.usesLocal {
		s.endpointChoice(s.ch.svl, cat.Local)
	}
	if p.usesExternal {
		s.externalChain(p)
	}
	if p.usesFW {
		s.firewallChain()
	}
	for _, ep := range cat.AllReachable {
		s.endpointChain(n, ep)
	}
	if sp.InternalPolicyLocal && len(cat.Local) == 0 && cat.HasAny {
		s.out.NoLocal = append(s.out.NoLocal, "internal")
	}
	if sp.ExternalPolicyLocal && sp.ExternallyAccessible() && len(cat.Local) == 0 && cat.HasAny {
		s.out.NoLocal = append(s.out.NoLocal, "external")
	}
	return s.out
}

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
	p.usesExternal = p.hasExternal && sp.ExternallyAccessible()
	p.usesFW = p.usesExternal && len(ipv4Only(sp.LoadBalancerIPs)) > 0 && len(sp.LoadBalancerSourceRanges) > 0
	p.internalFilter, p.internalComment = filterTarget(cat.HasAny, p.hasInternal, s.name)
	p.externalFilter, p.externalComment = filterTarget(cat.HasAny, p.hasExternal, s.name)
	return p
}

// filterTarget is what the filter table does with traffic that has no endpoint:
// REJECT when the Service has none at all (clients fail fast), DROP when only this
// node has none under a Local policy (the load balancer should go elsewhere).
func filterTarget(hasAny, has bool, name string) (string, string) {
	switch {
	case !hasAny:
		return "REJECT --reject-with icmp-port-unreachable", name + " has no endpoints"
	case !has:
		return "DROP", name + " has no local endpoints"
	}
	return "", ""
}

// port completes a rule that matches the Service's protocol and a port, in the order
// iptables-save prints it: addresses (already in c), protocol, comment, extra
// matches, port.
func (s *svcRender) port(c *spec, comment string, port int32, extra ...string) *spec {
	return c.proto(s.proto).comment(comment).add(extra...).dport(s.proto, port)
}

func (s *svcRender) dispatchRules(p policies) {
	sp := s.sp
	for _, ip := range ipv4Only(sp.ClusterIPs) {
		if p.hasInternal {
			s.dispatch(tableNAT, chainServices, s.port(newSpec().dst(ip), s.name+" cluster IP", sp.Port).jump(p.internalChain))
		} else {
			s.dispatch(tableFilter, chainServices, s.port(newSpec().dst(ip), p.internalComment, sp.Port).jump(p.internalFilter))
		}
	}
	for _, ip := range ipv4Only(sp.ExternalIPs) {
		if p.usesExternal {
			s.dispatch(tableNAT, chainServices, s.port(newSpec().dst(ip), s.name+" external IP", sp.Port).jump(s.ch.ext))
		} else {
			s.dispatch(tableFilter, chainExternalServices, s.port(newSpec().dst(ip), p.externalComment, sp.Port).jump(p.externalFilter))
		}
	}
	lbTarget := s.ch.ext
	if p.usesFW {
		lbTarget = s.ch.fw
	}
	for _, ip := range ipv4Only(sp.LoadBalancerIPs) {
		if p.usesExternal {
			s.dispatch(tableNAT, chainServices, s.port(newSpec().dst(ip), s.name+" loadbalancer IP", sp.Port).jump(lbTarget))
		} else {
			s.dispatch(tableFilter, chainExternalServices, s.port(newSpec().dst(ip), p.externalComment, sp.Port).jump(p.externalFilter))
		}
		if p.usesFW {
			// Traffic the KUBE-FW chain did not accept falls through to here.
			s.dispatch(tableFilter, chainProxyFirewall, s.port(newSpec().dst(ip), s.name+" traffic not accepted by "+s.ch.fw, sp.Port).jump("DROP"))
		}
	}
	if sp.NodePort != 0 {
		if p.usesExternal {
			s.dispatch(tableNAT, chainNodePorts, s.port(newSpec(), s.name, sp.NodePort).jump(s.ch.ext))
		} else {
			s.dispatch(tableFilter, chainExternalServices, s.port(newSpec(), p.externalComment, sp.NodePort, "-m", "addrtype", "--dst-type", "LOCAL").jump(p.externalFilter))
		}
	}
	if sp.HealthCheckNodePort != 0 {
		s.dispatch(tableFilter, chainNodePorts, newSpec().proto("tcp").comment(s.name+" health check node port").dport("tcp", sp.HealthCheckNodePort).jump("ACCEPT"))
	}
}

// clusterChain is KUBE-SVC: masquerade what needs it, then choose an endpoint.
func (s *svcRender) clusterChain(eps []state.Endpoint) {
	s.chain(s.ch.svc)
	cfg := s.rc.cfg
	for _, ip := range ipv4Only(s.sp.ClusterIPs) {
		switch {
		case cfg.MasqueradeAll:
			s.rule(s.ch.svc, s.port(newSpec().dst(ip), s.name+" cluster IP", s.sp.Port).jump(chainMarkMasq))
		case len(cfg.ClusterCIDRs) > 0:
			for _, cidr := range cfg.ClusterCIDRs {
				if cidr.Addr().Is4() {
					s.rule(s.ch.svc, s.port(newSpec().src(cidr, true).dst(ip), s.name+" cluster IP", s.sp.Port).jump(chainMarkMasq))
				}
			}
		}
	}
	s.endpointChoice(s.ch.svc, eps)
}

// endpointChoice spreads new connections: endpoint i of n matches with probability
// 1/(n-i), the last unconditionally. ClientIP affinity first sends a client back to
// the endpoint it used recently.
func (s *svcRender) endpointChoice(chain string, eps []state.Endpoint) {
	s.chain(chain)
	n := s.sp.Name
	if s.sp.AffinityTimeout > 0 {
		secs := strconv.Itoa(int(s.sp.AffinityTimeout.Seconds()))
		for _, ep := range eps {
			sep := endpointChain(n, ep.String())
			s.rule(chain, newSpec().comment(s.name+" -> "+ep.String()).add("-m", "recent", "--rcheck", "--seconds", secs, "--reap", "--name", sep, "--mask", "255.255.255.255", "--rsource").jump(sep))
		}
	}
	for i, ep := range eps {
		sep := endpointChain(n, ep.String())
		c := newSpec().comment(s.name + " -> " + ep.String())
		if i < len(eps)-1 {
			c.add("-m", "statistic", "--mode", "random", "--probability", s.rc.probability(len(eps)-i))
		}
		s.rule(chain, c.jump(sep))
	}
}

// externalChain is KUBE-EXT: the entry for NodePort, external and LB traffic.
func (s *svcRender) externalChain(p policies) {
	ext := s.ch.ext
	s.chain(ext)
	if !s.sp.ExternalPolicyLocal {
		// Endpoints may be on other nodes: masquerade so replies come back here.
		s.rule(ext, newSpec().comment("masquerade traffic for "+s.name+" external destinations").jump(chainMarkMasq))
	} else if p.usesCluster {
		// Pods and the node itself reaching an external address are served by any
		// endpoint, as if they had gone out to the load balancer and back.
		for _, cidr := range s.rc.cfg.ClusterCIDRs {
			if cidr.Addr().Is4() {
				s.rule(ext, newSpec().src(cidr, false).comment("pod traffic for "+s.name+" external destinations").jump(s.ch.svc))
			}
		}
		s.rule(ext, newSpec().comment("masquerade LOCAL traffic for "+s.name+" external destinations").add("-m", "addrtype", "--src-type", "LOCAL").jump(chainMarkMasq))
		s.rule(ext, newSpec().comment("route LOCAL traffic for "+s.name+" external destinations").add("-m", "addrtype", "--src-type", "LOCAL").jump(s.ch.svc))
	}
	s.rule(ext, newSpec().jump(p.externalPolicyChain))
}

// firewallChain is KUBE-FW: only the source ranges (and the LB's own addresses)
// continue to KUBE-EXT; the rest falls through to a DROP in KUBE-PROXY-FIREWALL.
func (s *svcRender) firewallChain() {
	fw := s.ch.fw
	s.chain(fw)
	for _, r := range s.sp.LoadBalancerSourceRanges {
		if r.Addr().Is4() {
			s.rule(fw, newSpec().src(r.Masked(), false).comment(s.name+" loadbalancer IP").jump(s.ch.ext))
		}
	}
	for _, ip := range ipv4Only(s.sp.LoadBalancerIPs) {
		s.rule(fw, newSpec().add("-s", hostPrefix(ip)).comment(s.name+" loadbalancer IP").jump(s.ch.ext))
	}
}

// endpointChain is KUBE-SEP: masquerade hairpin traffic and DNAT.
func (s *svcRender) endpointChain(n state.ServicePortName, ep state.Endpoint) {
	sep := endpointChain(n, ep.String())
	s.chain(sep)
	s.rule(sep, newSpec().add("-s", hostPrefix(ep.IP)).comment(s.name).jump(chainMarkMasq))
	c := newSpec().proto(s.proto).comment(s.name)
	if s.sp.AffinityTimeout > 0 {
		c.add("-m", "recent", "--set", "--name", sep, "--mask", "255.255.255.255", "--rsource")
	}
	c.add("-m", s.proto)
	s.rule(sep, c.jump("DNAT --to-destination "+ep.String()))
}
