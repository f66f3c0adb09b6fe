package iptables

import "net/netip"

// renderFixed returns the chains whose content does not depend on Services, the
// shared dispatch chains, and the jumps from the built-in chains.
func renderFixed(cfg RenderConfig) *Ruleset {
	mark := cfg.markMasq()
	markBoth := mark + "/" + mark
	r := &Ruleset{
		Fixed: []Chain{
			{Table: tableNAT, Name: chainPostrouting, Rules: []string{
				newSpec().add("-m", "mark", "!", "--mark", markBoth).jump("RETURN"),
				newSpec().jump("MARK --set-xmark " + mark + "/0x0"),
				newSpec().comment("kubernetes service traffic requiring SNAT").jump("MASQUERADE --random-fully"),
			}},
			{Table: tableNAT, Name: chainMarkMasq, Rules: []string{
				newSpec().jump("MARK --set-xmark " + markBoth),
			}},
			{Table: tableFilter, Name: chainForward, Rules: []string{
				newSpec().add("-m", "conntrack", "--ctstate", "INVALID").jump("DROP"),
				newSpec().comment("kubernetes forwarding rules").add("-m", "mark", "--mark", markBoth).jump("ACCEPT"),
				newSpec().comment("kubernetes forwarding conntrack rule").add("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED").jump("ACCEPT"),
			}},
		},
		Dispatch: []chainRef{
			{tableNAT, chainServices},
			{tableNAT, chainNodePorts},
			{tableFilter, chainServices},
			{tableFilter, chainExternalServices},
			{tableFilter, chainNodePorts},
			{tableFilter, chainProxyFirewall},
		},
		Tail:  map[chainRef][]string{{tableNAT, chainServices}: nodePortTail(cfg)},
		Jumps: jumps(),
	}
	if cfg.BlockLocalnet && !cfg.IPv6 {
		r.Fixed = append(r.Fixed, Chain{Table: tableFilter, Name: chainFirewall, Rules: []string{blockLocalnetRule()}})
		// First in INPUT and OUTPUT, ahead of the health-check ACCEPTs, so nothing
		// accepts a martian before it is dropped.
		r.Jumps = append([]Jump{
			{Table: tableFilter, Chain: "INPUT", Spec: newSpec().jump(chainFirewall)},
			{Table: tableFilter, Chain: "OUTPUT", Spec: newSpec().jump(chainFirewall)},
		}, r.Jumps...)
	}
	return r
}

// blockLocalnetRule drops packets to 127.0.0.0/8 that came from elsewhere, unless
// conntrack knows them: replies, and connections kproxy DNATed (a localhost NodePort
// from the node itself). Same rule as kube-proxy's, in iptables-save's order.
func blockLocalnetRule() string {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	return newSpec().src(loop, true).add("-d", "127.0.0.0/8").comment("block incoming localnet connections").
		add("-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT").jump("DROP")
}

// nodePortTail sends traffic to node addresses into KUBE-NODEPORTS. It must be the
// last rule of KUBE-SERVICES so that ClusterIPs and external IPs that happen to be
// local addresses match their own rules first.
func nodePortTail(cfg RenderConfig) []string {
	const c = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"
	if cfg.NodePortAddresses == nil {
		s := newSpec()
		if cfg.IPv6 || cfg.NoLocalhostNodePorts {
			// IPv6 has no route_localnet: ::1 never serves NodePorts (kube-proxy).
			s.add("!", "-d", cfg.loopback().String())
		}
		return []string{s.comment(c).add("-m", "addrtype", "--dst-type", "LOCAL").jump(chainNodePorts)}
	}
	var out []string
	for _, a := range cfg.addrs(cfg.NodePortAddresses) {
		if a.IsLoopback() && (cfg.IPv6 || cfg.NoLocalhostNodePorts) {
			continue // no route_localnet (localhostNodePorts false, or IPv6): no DNAT from loopback
		}
		out = append(out, newSpec().dst(a).comment(c).jump(chainNodePorts))
	}
	return out
}

// jumps are the rules in built-in chains that lead into kproxy's chains, as
// kube-proxy's iptablesJumpChains.
func jumps() []Jump {
	isNew := []string{"-m", "conntrack", "--ctstate", "NEW"}
	j := func(table, from, comment, to string, match ...string) Jump {
		return Jump{Table: table, Chain: from, Spec: newSpec().add(match...).comment(comment).jump(to)}
	}
	return []Jump{
		j(tableFilter, "INPUT", "kubernetes health check service ports", chainNodePorts),
		j(tableFilter, "INPUT", "kubernetes externally-visible service portals", chainExternalServices, isNew...),
		j(tableFilter, "INPUT", "kubernetes load balancer firewall", chainProxyFirewall, isNew...),
		j(tableFilter, "FORWARD", "kubernetes externally-visible service portals", chainExternalServices, isNew...),
		j(tableFilter, "FORWARD", "kubernetes service portals", chainServices, isNew...),
		j(tableFilter, "FORWARD", "kubernetes forwarding rules", chainForward),
		j(tableFilter, "FORWARD", "kubernetes load balancer firewall", chainProxyFirewall, isNew...),
		j(tableFilter, "OUTPUT", "kubernetes service portals", chainServices, isNew...),
		j(tableFilter, "OUTPUT", "kubernetes load balancer firewall", chainProxyFirewall, isNew...),
		j(tableNAT, "PREROUTING", "kubernetes service portals", chainServices),
		j(tableNAT, "OUTPUT", "kubernetes service portals", chainServices),
		j(tableNAT, "POSTROUTING", "kubernetes postrouting rules", chainPostrouting),
	}
}
