package nftables

import (
	"net/netip"

	"kproxy.dev/kproxy/internal/state"
)

// The shared path. Most Services are ClusterIP/NodePort/LoadBalancer Services with
// random choice, Cluster traffic policies and no affinity. They get no chain of their
// own and no verdict: they are elements of plain sets only. Chain services sends a
// packet whose address, protocol and port are in pick-ips (ClusterIPs),
// external-pick-ips (external and load-balancer IPs) or nodeport-pick-ports
// (NodePorts) to the dispatch chain pick, external-pick or nodeport-pick, whose
// rule n goes to the shared chain pick-n (external-pick-n, nodeport-pick-n) when
// the key is in the set pick-n-ips (external-pick-n-ips, nodeport-pick-n-ports):
// the Service has n endpoints. The pick chains DNAT through the service-endpoints
// data map.
//
// Why no verdict: a commit that adds a goto/jump element or any rule makes the
// kernel validate the whole table, walking every element of every verdict map
// reachable from the base chains (nft_lookup_validate). With one `goto pick-n`
// element per Service in service-ips that walk grew with the number of Services
// (14 ms per one-Service change at 100,000, docs/performance.md); plain-set
// elements trigger no validation. The dispatch chains and sets are written by the
// full sync and never change. (One data map from the key to n and a constant
// verdict map from n to pick-n, chained through a register, would cost one lookup
// less per new connection, but nft 1.0.6 aborts listing such a rule.)
//
// Cost per new connection to such a Service: the gate set lookup plus one set
// lookup per rule of the dispatch chain up to n (rules ordered by n); other
// traffic pays the gate lookups only.

// renderPickChains renders the shared chains for 1..maxSharedPick endpoints, the
// dispatch chains and the sets they test.
func renderPickChains(f family, fr *fragment) {
	fr.sets = append(fr.sets, &set{name: setPickIPs, kind: kindServiceSet},
		&set{name: setExternalPickIPs, kind: kindServiceSet}, &set{name: setNodePortPickPorts, kind: kindPortSet})
	dispatch := fr.addChain(&chain{name: chainPick})
	externalDispatch := fr.addChain(&chain{name: chainExternalPick})
	nodePortDispatch := fr.addChain(&chain{name: chainNodePortPick})
	for n := 1; n <= maxSharedPick; n++ {
		fr.sets = append(fr.sets, &set{name: pickSet(n), kind: kindServiceSet},
			&set{name: externalPickSet(n), kind: kindServiceSet}, &set{name: nodePortPickSet(n), kind: kindPortSet})
		dispatch.rules = append(dispatch.rules, rule{serviceInSet{fam: f, set: pickSet(n)}, gotoChain(pickChain(n))})
		externalDispatch.rules = append(externalDispatch.rules,
			rule{serviceInSet{fam: f, set: externalPickSet(n)}, gotoChain(externalPickChain(n))})
		nodePortDispatch.rules = append(nodePortDispatch.rules,
			rule{portInSet{set: nodePortPickSet(n)}, gotoChain(nodePortPickChain(n))})

		pick := rule{slotDnat{fam: f, mod: uint32(n), set: mapServiceEndpoints}}
		fr.addChain(&chain{name: pickChain(n), rules: []rule{pick}})
		fr.addChain(&chain{name: externalPickChain(n), rules: []rule{{jumpChain(chainMarkMasq)}, pick}})
		fr.addChain(&chain{name: nodePortPickChain(n), rules: []rule{{jumpChain(chainMarkMasq)},
			{slotDnat{fam: f, nodePort: true, mod: uint32(n), set: mapNodePortEndpoints}}}})
	}
}

func liveEndpoints(eps []state.Endpoint) []state.Endpoint {
	return state.FilterEndpoints(eps, func(e *state.Endpoint) bool { return e.Weight != 0 })
}

// sharedPickFits reports whether the ServicePort can use the shared pick chains.
func sharedPickFits(p servicePort, sched schedule, live []state.Endpoint) bool {
	sp := p.sp
	return sched.name == schedRandom && affinitySeconds(sp) == 0 && !sp.InternalPolicyLocal &&
		!(sp.ExternallyAccessible() && sp.ExternalPolicyLocal) && len(live) >= 1
}

// ownPickChains renders the pick chains of a shared-path ServicePort with more
// than maxSharedPick endpoints: chains of its own with the shared chains' single
// slotDnat rule (mod n), so that a Service with 10,000 endpoints is still 10,000
// data-map elements and not 10,000 chains. Its addresses go to them through
// verdict elements (service-ips, service-nodeports).
func ownPickChains(o renderOptions, p servicePort, n int, fr *fragment) (pick, external, nodePort string) {
	f := o.fam
	pick, external, nodePort = p.names.service(), p.names.external(), p.names.nodePort()
	slot := rule{slotDnat{fam: f, mod: uint32(n), set: mapServiceEndpoints}}
	fr.addChain(&chain{name: pick, rules: []rule{slot}})
	if len(p.external) > 0 {
		fr.addChain(&chain{name: external, rules: []rule{{jumpChain(chainMarkMasq)}, slot}})
	}
	if p.sp.NodePort != 0 {
		fr.addChain(&chain{name: nodePort, rules: []rule{{jumpChain(chainMarkMasq)},
			{slotDnat{fam: f, nodePort: true, mod: uint32(n), set: mapNodePortEndpoints}}}})
	}
	return pick, external, nodePort
}

// sharedElemCount is how many elements renderShared renders for p with n endpoints.
func sharedElemCount(p servicePort, n int) int {
	keys := 1 + len(p.external) // ClusterIP, external
	if p.sp.NodePort != 0 {
		keys++
	}
	if n <= maxSharedPick {
		keys *= 2 // the gate set and the set of n
	}
	c := 1 + keys + n*newSlotShape(p).width() // masquerade, keys, slots
	if len(p.ranges) > 0 {
		c += len(p.lbIPs)
	}
	return c
}

// renderShared renders a ServicePort on the shared path: elements only (plus a
// firewall chain when it has loadBalancerSourceRanges, and its own pick chains past
// maxSharedPick endpoints). The elements that do not depend on the endpoints come
// first, then one group of elements per slot (slots.go), so that a change of a few
// endpoints of a large Service rewrites a few groups (renderServiceUpdate).
func renderShared(o renderOptions, p servicePort, live []state.Endpoint, fr *fragment) {
	renderSharedFixed(o, p, len(live), fr)
	fixed := len(fr.elems)
	shape := newSlotShape(p)
	for i, e := range live {
		fr.elems = shape.appendSlot(fr.elems, uint32(i), e.AddrPort())
	}
	if len(live) > maxSharedPick {
		fr.slots = &slotLayout{fixed: fixed, shape: shape}
	}
}

// renderSharedFixed renders what of a shared-path ServicePort with n endpoints does
// not depend on which endpoints they are: the elements that send its addresses to
// the pick chains (and its own pick chains past maxSharedPick).
func renderSharedFixed(o renderOptions, p servicePort, n int, fr *fragment) {
	sp := p.sp
	proto, port := l4Of(sp.Protocol), uint16(sp.Port)
	fr.elems = append(fr.elems, elemSpec{set: setMasqServices, addr: p.clusterIP, proto: proto, port: port}.elem())
	if n <= maxSharedPick {
		key := func(set string, a netip.Addr) elem {
			return elemSpec{set: set, addr: a, proto: proto, port: port}.elem()
		}
		fr.elems = append(fr.elems, key(setPickIPs, p.clusterIP), key(pickSet(n), p.clusterIP))
		for _, a := range p.external {
			fr.elems = append(fr.elems, key(setExternalPickIPs, a), key(externalPickSet(n), a))
		}
		if sp.NodePort != 0 {
			np := uint16(sp.NodePort)
			fr.elems = append(fr.elems, elemSpec{set: setNodePortPickPorts, proto: proto, port: np}.elem(),
				elemSpec{set: nodePortPickSet(n), proto: proto, port: np}.elem())
		}
	} else {
		pick, externalPick, nodePortPick := ownPickChains(o, p, n, fr)
		fr.elems = append(fr.elems,
			elemSpec{set: mapServiceIPs, addr: p.clusterIP, proto: proto, port: port, verdict: "goto " + pick}.elem())
		for _, a := range p.external {
			fr.elems = append(fr.elems, elemSpec{set: mapServiceIPs, addr: a, proto: proto, port: port,
				verdict: "goto " + externalPick}.elem())
		}
		if sp.NodePort != 0 {
			fr.elems = append(fr.elems, elemSpec{set: mapServiceNodePorts, proto: proto, port: uint16(sp.NodePort),
				verdict: "goto " + nodePortPick}.elem())
		}
	}
	renderFirewall(o, p, func(set string, a netip.Addr, v string) elem {
		return elemSpec{set: set, addr: a, proto: proto, port: port, verdict: v}.elem()
	}, fr)
}
