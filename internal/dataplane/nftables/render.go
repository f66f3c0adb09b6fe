package nftables

import (
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// renderOptions are the node-wide inputs of rendering for one family.
type renderOptions struct {
	fam      family
	masqMark uint32
	// masqueradeAll marks every packet to a ClusterIP for masquerade.
	masqueradeAll bool
	// clusterCIDRs of this family; traffic to a ClusterIP from outside them is
	// masqueraded, and with eTP=Local traffic from inside them short-circuits.
	clusterCIDRs []netip.Prefix
	// nodePortIPs restricts NodePorts to these addresses; nil means every local
	// address (fib daddr type local).
	nodePortIPs []netip.Addr
	// defaultScheduler applies when a Service names none.
	defaultScheduler string
	// serviceCIDRs of this family (Snapshot.ServiceCIDRs): addresses inside them
	// that are no ClusterIP are dropped. Not part of key: a change is a partial sync.
	serviceCIDRs []netip.Prefix
	// mhTableSize fixes the Maglev table size of mh Services (a prime); 0 sizes it
	// by endpoint count (mhTableSize). Tests use small tables.
	mhTableSize int
}

// renderNode renders the fixed part of the table: base chains, dispatch chains and
// the declarations of the shared maps.
func renderNode(o renderOptions) *fragment {
	f := o.fam
	fr := &fragment{}
	fr.sets = append(fr.sets, []*set{
		{name: mapServiceIPs, kind: kindServiceKey},
		{name: mapServiceNodePorts, kind: kindPortKey},
		{name: setNoEndpointReject, kind: kindServiceSet},
		{name: setNoEndpointDrop, kind: kindServiceSet},
		{name: setNoEndpointRejectPorts, kind: kindPortSet},
		{name: setNoEndpointDropPorts, kind: kindPortSet},
		{name: mapFirewallIPs, kind: kindServiceKey},
		{name: setNodePortIPs, kind: kindAddrSet},
		{name: mapServiceEndpoints, kind: kindSlotMap},
		{name: mapNodePortEndpoints, kind: kindPortSlotMap},
		{name: setMasqServices, kind: kindServiceSet},
		{name: setHairpin, kind: kindPairSet},
	}...)
	for _, a := range o.nodePortIPs {
		if f.matches(a) {
			fr.elems = append(fr.elems, elemSpec{set: setNodePortIPs, addr: a}.elem())
		}
	}
	// Every local address but loopback: DNAT to a pod address is not routed from
	// 127.0.0.0/8 without route_localnet, which nftables mode never sets, so a
	// client of 127.0.0.1:NodePort would hang instead of being refused (as in
	// kube-proxy's nftables mode; localhost NodePorts are a userspace relay there).
	nodePortMatch := rule{fibLocal{daddr: true}, addrMatch{fam: f, daddr: true, negate: true, prefix: loopbackPrefix(f)}}
	if o.nodePortIPs != nil {
		nodePortMatch = rule{addrInSet{fam: f, daddr: true, set: setNodePortIPs}}
	}
	nodePorts := func(v stmt) rule { return append(append(rule{}, nodePortMatch...), v) }
	newConn := func(v verdict) rule { return rule{ctStateNew{}, v} }

	fr.addChain(&chain{name: "nat-prerouting", base: &hook{"nat", "prerouting", priorityDstNAT},
		rules: []rule{{jumpChain(chainServices)}}})
	fr.addChain(&chain{name: "nat-output", base: &hook{"nat", "output", priorityDstNAT},
		rules: []rule{{jumpChain(chainServices)}}})
	fr.addChain(&chain{name: "nat-postrouting", base: &hook{"nat", "postrouting", prioritySrcNAT},
		rules: []rule{
			// Hairpin: a pod reaching itself through a Service must be masqueraded,
			// or its reply would bypass the conntrack entry.
			{ctStatusDNAT{}, pairInSet{fam: f, set: setHairpin}, jumpChain(chainMarkMasq)},
			{jumpChain(chainMasquerading)},
		}})
	fr.addChain(&chain{name: "filter-prerouting", base: &hook{"filter", "prerouting", priorityFilter},
		rules: []rule{newConn(jumpChain(chainFirewallCheck))}})
	fr.addChain(&chain{name: "filter-input", base: &hook{"filter", "input", priorityFilter},
		rules: []rule{newConn(jumpChain(chainEndpointsCheck))}})
	fr.addChain(&chain{name: "filter-forward", base: &hook{"filter", "forward", priorityFilter},
		rules: []rule{newConn(jumpChain(chainEndpointsCheck)), newConn(jumpChain(chainClusterIPs))}})
	fr.addChain(&chain{name: "filter-output", base: &hook{"filter", "output", priorityFilter},
		rules: []rule{newConn(jumpChain(chainEndpointsCheck)), newConn(jumpChain(chainFirewallCheck))}})
	// After nat-output: the node's own connections that were not DNATed.
	fr.addChain(&chain{name: "filter-output-post-dnat", base: &hook{"filter", "output", priorityFilterPostDNAT},
		rules: []rule{newConn(jumpChain(chainClusterIPs))}})

	var masq []rule
	switch {
	case o.masqueradeAll:
		masq = []rule{{serviceInSet{fam: f, set: setMasqServices}, jumpChain(chainMarkMasq)}}
	case len(o.clusterCIDRs) > 0:
		// Traffic to a ClusterIP from outside the cluster network is masqueraded.
		masq = []rule{{addrMatch{fam: f, negate: true, prefix: o.clusterCIDRs[0]},
			serviceInSet{fam: f, set: setMasqServices}, jumpChain(chainMarkMasq)}}
	}
	// Services with chains of their own are verdict elements of service-ips and
	// service-nodeports; those of the shared path are plain-set elements (shared.go).
	fr.addChain(&chain{name: chainServices, rules: append(masq, []rule{
		{serviceVmap{fam: f, set: mapServiceIPs}},
		{serviceInSet{fam: f, set: setPickIPs}, gotoChain(chainPick)},
		{serviceInSet{fam: f, set: setExternalPickIPs}, gotoChain(chainExternalPick)},
		nodePorts(portVmap{set: mapServiceNodePorts}),
		append(nodePorts(portInSet{set: setNodePortPickPorts}), gotoChain(chainNodePortPick)),
	}...)})
	// Plain sets and constant rules, as the shared path: a Service losing its
	// last endpoint commits no verdict (shared.go says why that matters).
	fr.addChain(&chain{name: chainEndpointsCheck, rules: []rule{
		{serviceInSet{fam: f, set: setNoEndpointReject}, gotoChain(chainReject)},
		{serviceInSet{fam: f, set: setNoEndpointDrop}, verdictDrop},
		nodePorts(gotoChain(chainNodePortsCheck)),
	}})
	fr.addChain(&chain{name: chainNodePortsCheck, rules: []rule{
		{portInSet{set: setNoEndpointRejectPorts}, gotoChain(chainReject)},
		{portInSet{set: setNoEndpointDropPorts}, verdictDrop},
	}})
	fr.addChain(&chain{name: chainFirewallCheck, rules: []rule{{serviceVmap{fam: f, set: mapFirewallIPs}}}})
	renderClusterIPsCheck(o, fr)
	// TCP gets a reset: ICMP errors for forwarded packets are rate limited per
	// destination host (net.ipv4.icmp_ratelimit), so a client behind the node would
	// wait for its SYN to time out instead of seeing "connection refused".
	fr.addChain(&chain{name: chainReject, rules: []rule{
		{rejectStmt{fam: f, tcpReset: true}},
		{rejectStmt{fam: f}},
	}})
	fr.addChain(&chain{name: chainMasquerading, rules: []rule{
		{markUnset{mark: o.masqMark}, verdictReturn},
		{markOp{mark: o.masqMark, xor: true}},
		{masquerade{}},
	}})
	fr.addChain(&chain{name: chainMarkMasq, rules: []rule{{markOp{mark: o.masqMark}}}})
	// Last: the kernel finds a set by name walking the table's sets in the order
	// they were added, once per element message, and the sets every change
	// writes (cluster-ips, hairpin, ...) come first that way.
	renderPickChains(f, fr)
	return fr
}

// servicePort is what renderService needs about one ServicePort, already narrowed
// to one family.
type servicePort struct {
	sp        *state.ServicePort
	names     portNames
	clusterIP netip.Addr
	external  []netip.Addr // externalIPs and load-balancer IPs
	lbIPs     []netip.Addr
	ranges    []netip.Prefix
	cat       state.Categorized
}

func narrow(o renderOptions, sp *state.ServicePort, cat state.Categorized) (servicePort, bool) {
	f := o.fam
	p := servicePort{sp: sp, names: newPortNames(sp.Name)}
	for _, a := range sp.ClusterIPs {
		if f.matches(a) && !p.clusterIP.IsValid() {
			p.clusterIP = a
		}
	}
	if !p.clusterIP.IsValid() {
		return p, false
	}
	for _, a := range sp.ExternalIPs {
		if f.matches(a) {
			p.external = append(p.external, a)
		}
	}
	for _, a := range sp.LoadBalancerIPs {
		if f.matches(a) {
			p.external = append(p.external, a)
			p.lbIPs = append(p.lbIPs, a)
		}
	}
	for _, r := range sp.LoadBalancerSourceRanges {
		if f.matches(r.Addr()) {
			p.ranges = append(p.ranges, r.Masked())
		}
	}
	keep := func(eps []state.Endpoint) []state.Endpoint {
		return state.FilterEndpoints(eps, func(e *state.Endpoint) bool { return f.matches(e.IP) })
	}
	p.cat = state.Categorized{Cluster: keep(cat.Cluster), Local: keep(cat.Local),
		AllReachable: keep(cat.AllReachable), HasAny: cat.HasAny}
	return p, true
}

func protoName(p v1.Protocol) string { return strings.ToLower(string(p)) }

// renderService renders one ServicePort for one family: its chains, its own sets and
// its elements in the shared maps. cat comes from snap.Categorize.
func renderService(o renderOptions, sp *state.ServicePort, cat state.Categorized) *fragment {
	fr := &fragment{}
	p, ok := narrow(o, sp, cat)
	if !ok {
		return fr
	}
	sched := newSchedule(o, sp, fr)
	if live := liveEndpoints(p.cat.Cluster); sharedPickFits(p, sched, live) {
		// Sized exactly: the model keeps every fragment until the next change.
		fr.elems = make([]elem, 0, 1+sharedElemCount(p, len(live)))
		fr.elems = append(fr.elems, clusterIPElem(p.clusterIP))
		renderShared(o, p, live, fr)
		return fr
	}
	fr.elems = append(fr.elems, clusterIPElem(p.clusterIP))
	proto := l4Of(sp.Protocol)
	port := uint16(sp.Port)

	for _, ep := range p.cat.AllReachable {
		renderEndpoint(o, p, ep, fr)
	}
	// A picker chain exists only when it has endpoints: without, traffic is rejected
	// or dropped through the no-endpoint maps and nothing refers to the chain.
	if sp.UsesClusterEndpoints() && len(p.cat.Cluster) > 0 {
		renderPicker(o, p, sched, p.names.service(), p.cat.Cluster, fr)
	}
	if sp.UsesLocalEndpoints() && len(p.cat.Local) > 0 {
		renderPicker(o, p, sched, p.names.local(), p.cat.Local, fr)
	}

	internal, internalEps := p.names.service(), p.cat.Cluster
	if sp.InternalPolicyLocal {
		internal, internalEps = p.names.local(), p.cat.Local
	}
	key := func(set string, a netip.Addr, v string) elem {
		return elemSpec{set: set, addr: a, proto: proto, port: port, verdict: v}.elem()
	}
	if len(internalEps) > 0 {
		fr.elems = append(fr.elems, key(mapServiceIPs, p.clusterIP, "goto "+internal),
			key(setMasqServices, p.clusterIP, ""))
	} else {
		ips, _ := noEndpointSets(p.cat.HasAny)
		fr.elems = append(fr.elems, key(ips, p.clusterIP, ""))
	}
	if !sp.ExternallyAccessible() || (len(p.external) == 0 && sp.NodePort == 0) {
		return fr
	}
	externalEps := p.cat.Cluster
	if sp.ExternalPolicyLocal {
		externalEps = p.cat.Local
	}
	target, targetMap, portMap := "goto "+p.names.external(), mapServiceIPs, mapServiceNodePorts
	if len(externalEps) == 0 && shortCircuits(p) {
		// eTP Local without a local endpoint: pods and the node still reach the
		// cluster-wide endpoints through the external chain, which drops the rest
		// (outside traffic) itself, as kube-proxy does.
		renderExternal(o, p, fr)
	} else if len(externalEps) == 0 {
		targetMap, portMap = noEndpointSets(p.cat.HasAny)
		target = "" // set elements
	} else {
		renderExternal(o, p, fr)
	}
	for _, a := range p.external {
		fr.elems = append(fr.elems, key(targetMap, a, target))
	}
	if sp.NodePort != 0 {
		fr.elems = append(fr.elems, elemSpec{set: portMap, proto: proto, port: uint16(sp.NodePort), verdict: target}.elem())
	}
	renderFirewall(o, p, key, fr)
	return fr
}

// noEndpointSets are the sets of a Service's addresses and NodePort when it has no
// usable endpoint: rejected when it has no endpoint anywhere, dropped when
// endpoints exist but none may take this traffic (Local policy, none on this node).
func noEndpointSets(hasAny bool) (ips, ports string) {
	if hasAny {
		return setNoEndpointDrop, setNoEndpointDropPorts
	}
	return setNoEndpointReject, setNoEndpointRejectPorts
}

// renderExternal renders the entry chain of traffic to NodePorts, external IPs and
// load-balancer IPs.
func renderExternal(o renderOptions, p servicePort, fr *fragment) {
	c := fr.addChain(&chain{name: p.names.external()})
	if !p.sp.ExternalPolicyLocal {
		c.rules = []rule{{jumpChain(chainMarkMasq)}, {gotoChain(p.names.service())}}
		return
	}
	if p.sp.UsesClusterEndpoints() && len(p.cat.Cluster) > 0 {
		// Pods and the node itself reach the Service through its external address:
		// send them to all endpoints, like ClusterIP traffic (the node's own traffic
		// must be masqueraded for the reply to come back).
		for _, cidr := range o.clusterCIDRs {
			c.rules = append(c.rules, rule{addrMatch{fam: o.fam, prefix: cidr}, gotoChain(p.names.service())})
		}
		c.rules = append(c.rules,
			rule{fibLocal{}, jumpChain(chainMarkMasq)},
			rule{fibLocal{}, gotoChain(p.names.service())})
	}
	if len(p.cat.Local) == 0 {
		// Only short-circuited traffic may pass (see shortCircuits).
		c.rules = append(c.rules, rule{verdictDrop})
		return
	}
	c.rules = append(c.rules, rule{gotoChain(p.names.local())})
}

// shortCircuits reports whether a Local-policy port without local endpoints still
// serves in-cluster clients of its external addresses through the cluster-wide
// endpoints (the service chain exists).
func shortCircuits(p servicePort) bool {
	return p.sp.ExternalPolicyLocal && p.sp.UsesClusterEndpoints() && len(p.cat.Cluster) > 0
}

// renderFirewall restricts load-balancer IPs to loadBalancerSourceRanges.
func renderFirewall(o renderOptions, p servicePort, key func(string, netip.Addr, string) elem, fr *fragment) {
	if len(p.ranges) == 0 || len(p.lbIPs) == 0 {
		return
	}
	c := fr.addChain(&chain{name: p.names.firewall()})
	for _, r := range p.ranges {
		c.rules = append(c.rules, rule{addrMatch{fam: o.fam, prefix: r}, verdictReturn})
	}
	c.rules = append(c.rules, rule{verdictDrop})
	for _, a := range p.lbIPs {
		fr.elems = append(fr.elems, key(mapFirewallIPs, a, "goto "+p.names.firewall()))
	}
}

// renderEndpoint renders the chain that DNATs to one endpoint.
func renderEndpoint(o renderOptions, p servicePort, ep state.Endpoint, fr *fragment) {
	ap := ep.AddrPort()
	c := fr.addChain(&chain{name: p.names.endpoint(ap)})
	// Hairpin: a pod reaching itself through the Service must be masqueraded, or its
	// reply would bypass the conntrack entry.
	c.rules = append(c.rules, rule{addrMatch{fam: o.fam, prefix: netip.PrefixFrom(ep.IP, ep.IP.BitLen())}, jumpChain(chainMarkMasq)})
	if t := affinitySeconds(p.sp); t > 0 {
		s := &set{name: p.names.affinity(ap, t), kind: kindAffinity, timeout: t}
		fr.sets = append(fr.sets, s)
		c.rules = append(c.rules, rule{affinityUpdate{fam: o.fam, set: s.name}})
	}
	c.rules = append(c.rules, rule{l4proto{proto: protoName(p.sp.Protocol)}, dnat{fam: o.fam, to: ap}})
}

func affinitySeconds(sp *state.ServicePort) int {
	if sp.AffinityTimeout <= 0 {
		return 0
	}
	return int(sp.AffinityTimeout.Seconds())
}

// renderPicker renders a chain that picks one of eps for a new connection.
func renderPicker(o renderOptions, p servicePort, sched schedule, name string, eps []state.Endpoint, fr *fragment) {
	c := fr.addChain(&chain{name: name})
	if t := affinitySeconds(p.sp); t > 0 {
		for _, ep := range eps {
			ap := ep.AddrPort()
			c.rules = append(c.rules, rule{addrInSet{fam: o.fam, set: p.names.affinity(ap, t)},
				gotoChain(p.names.endpoint(ap))})
		}
	}
	c.rules = append(c.rules, sched.pick(p, name, eps, fr)...)
}

func (p servicePort) fam() family {
	if p.clusterIP.Is6() {
		return familyIPv6
	}
	return familyIPv4
}

// loopbackPrefix is the family's loopback network.
func loopbackPrefix(f family) netip.Prefix {
	if f.ipv6 {
		return netip.MustParsePrefix("::1/128")
	}
	return netip.MustParsePrefix("127.0.0.0/8")
}
