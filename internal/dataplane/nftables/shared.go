package nftables

import (
	"net/netip"

	"kproxy.dev/kproxy/internal/state"
)

// The shared path. Most Services are ClusterIP/NodePort/LoadBalancer Services with
// random choice, Cluster traffic policies and no affinity. They get no chain of their
// own: their map elements send them to shared chains pick-N (N = endpoint count),
// which DNAT through the service-endpoints data map. Changing such a Service only
// adds and deletes elements, and the kernel's validation of the table at commit
// (a walk of every chain reachable from the base chains, triggered by any new rule
// or jump) stays small however many Services there are.

// renderPickChains renders the shared chains for 1..maxSharedPick endpoints.
func renderPickChains(f family, fr *fragment) {
	for n := 1; n <= maxSharedPick; n++ {
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

// pickChains names the chains a shared-path ServicePort's map elements go to: the
// shared pick-N chains up to maxSharedPick endpoints, past that chains of its own
// with the same single slotDnat rule (mod N), so that a Service with 10,000
// endpoints is still 10,000 data-map elements and not 10,000 chains.
func pickChains(o renderOptions, p servicePort, n int, fr *fragment) (pick, external, nodePort string) {
	if n <= maxSharedPick {
		return pickChain(n), externalPickChain(n), nodePortPickChain(n)
	}
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
	c := 2 + n + len(p.external)*(1+n) + n // ClusterIP, masquerade, slots, external, hairpin
	if p.sp.NodePort != 0 {
		c += 1 + n
	}
	if len(p.ranges) > 0 {
		c += len(p.lbIPs)
	}
	return c
}

// renderShared renders a ServicePort on the shared path: elements only (plus a
// firewall chain when it has loadBalancerSourceRanges, and its own pick chains past
// maxSharedPick endpoints).
func renderShared(o renderOptions, p servicePort, live []state.Endpoint, fr *fragment) {
	sp := p.sp
	n := len(live)
	proto, port := l4Of(sp.Protocol), uint16(sp.Port)
	pick, externalPick, nodePortPick := pickChains(o, p, n, fr)
	slots := func(set string, addr *state.Endpoint, nodePort uint16) {
		for i, e := range live {
			s := elem{set: set, proto: proto, port: port, slot: true, index: uint32(i), to: e.AddrPort()}
			if addr != nil {
				s.addr = addr.IP
			} else {
				s.port = nodePort
			}
			fr.elems = append(fr.elems, s)
		}
	}
	fr.elems = append(fr.elems,
		elem{set: mapServiceIPs, addr: p.clusterIP, proto: proto, port: port, verdict: "goto " + pick},
		elem{set: setMasqServices, addr: p.clusterIP, proto: proto, port: port})
	slots(mapServiceEndpoints, &state.Endpoint{IP: p.clusterIP}, 0)
	for _, a := range p.external {
		fr.elems = append(fr.elems, elem{set: mapServiceIPs, addr: a, proto: proto, port: port,
			verdict: "goto " + externalPick})
		slots(mapServiceEndpoints, &state.Endpoint{IP: a}, 0)
	}
	if sp.NodePort != 0 {
		fr.elems = append(fr.elems, elem{set: mapServiceNodePorts, proto: proto, port: uint16(sp.NodePort),
			verdict: "goto " + nodePortPick})
		slots(mapNodePortEndpoints, nil, uint16(sp.NodePort))
	}
	for _, e := range live {
		fr.elems = append(fr.elems, pairElem(setHairpin, e.IP, e.IP))
	}
	renderFirewall(o, p, func(set string, a netip.Addr, v string) elem {
		return elem{set: set, addr: a, proto: proto, port: port, verdict: v}
	}, fr)
}
