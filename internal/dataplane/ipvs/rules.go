//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"strings"
)

// Chains kproxy owns in IPVS mode (kube-proxy's names).
const (
	chainServices          = "KUBE-SERVICES"
	chainPostrouting       = "KUBE-POSTROUTING"
	chainNodePort          = "KUBE-NODE-PORT"
	chainLoadBalancer      = "KUBE-LOAD-BALANCER"
	chainMarkMasq          = "KUBE-MARK-MASQ"
	chainForward           = "KUBE-FORWARD"
	chainProxyFirewall     = "KUBE-PROXY-FIREWALL"
	chainSourceRangesFW    = "KUBE-SOURCE-RANGES-FIREWALL"
	chainIPVSFilter        = "KUBE-IPVS-FILTER"
	chainNodePortFilter    = "KUBE-NODE-PORT"
	chainExternalNoLocal   = "KUBE-EXTERNAL-NO-LOCAL"
	defaultMasqueradeBit   = 14
	commentServicesPortals = "kubernetes service portals"
)

// jumpRule is a rule in a built-in chain that enters one of ours. It is inserted
// with `iptables -C`/`-I` since restore --noflush cannot edit built-in chains
// idempotently.
type jumpRule struct {
	Table, Chain string
	Args         []string
}

var jumpRules = []jumpRule{
	{"nat", "PREROUTING", []string{"-m", "comment", "--comment", commentServicesPortals, "-j", chainServices}},
	{"nat", "OUTPUT", []string{"-m", "comment", "--comment", commentServicesPortals, "-j", chainServices}},
	{"nat", "POSTROUTING", []string{"-m", "comment", "--comment", "kubernetes postrouting rules", "-j", chainPostrouting}},
	{"filter", "INPUT", []string{"-m", "comment", "--comment", "kubernetes ipvs access filter", "-j", chainIPVSFilter}},
	{"filter", "INPUT", []string{"-m", "comment", "--comment", "kube-proxy firewall rules", "-j", chainProxyFirewall}},
	{"filter", "FORWARD", []string{"-m", "comment", "--comment", "kube-proxy firewall rules", "-j", chainProxyFirewall}},
	{"filter", "FORWARD", []string{"-m", "comment", "--comment", "kubernetes forwarding rules", "-j", chainForward}},
	{"filter", "INPUT", []string{"-m", "comment", "--comment", "kubernetes health check rules", "-j", chainNodePortFilter}},
}

// rulesOptions are the node-wide inputs of the iptables rules.
type rulesOptions struct {
	V6            bool
	MasqueradeAll bool
	// ClusterCIDRs: traffic to a ClusterIP from outside them is masqueraded.
	ClusterCIDRs  []netip.Prefix
	MasqueradeBit int
}

// renderRules returns the iptables-restore input (nat and filter tables) for one
// family. The rules do not depend on the Services — only the ipsets do — so the
// text is constant per node and is rewritten only when it differs.
func renderRules(o rulesOptions) string {
	n := func(base string) string {
		if o.V6 {
			return setName(base, netip.IPv6Unspecified())
		}
		return base
	}
	mark := fmt.Sprintf("0x%x", 1<<o.MasqueradeBit)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

	w("*nat")
	for _, c := range natChains() {
		w(":%s - [0:0]", c)
	}
	w("-A %s -j MARK --or-mark %s", chainMarkMasq, mark)
	w("-A %s -m comment --comment \"hairpin: endpoint to itself\" -m set --match-set %s dst,dst,src -j MASQUERADE", chainPostrouting, n(setLoopBack))
	w("-A %s -m mark ! --mark %s/%s -j RETURN", chainPostrouting, mark, mark)
	w("-A %s -j MARK --xor-mark %s", chainPostrouting, mark)
	w("-A %s -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully", chainPostrouting)
	if o.MasqueradeAll {
		w("-A %s -m set --match-set %s dst,dst -j %s", chainServices, n(setClusterIP), chainMarkMasq)
	} else {
		for _, c := range o.ClusterCIDRs {
			if c.Addr().Is6() == o.V6 {
				w("-A %s ! -s %s -m set --match-set %s dst,dst -j %s", chainServices, c, n(setClusterIP), chainMarkMasq)
			}
		}
	}
	// The node's own connections to externalTrafficPolicy Local addresses are
	// masqueraded, as kube-proxy's iptables and nftables modes do ("masquerade
	// LOCAL traffic"): the source the node picks for a kube-ipvs0 address is that
	// address, which no remote endpoint can answer.
	local := "-m addrtype --src-type LOCAL"
	w("-A %s %s -m set --match-set %s dst,dst -j %s", chainServices, local, n(setExternalIPLocal), chainMarkMasq)
	w("-A %s -m set --match-set %s dst,dst -j %s", chainServices, n(setExternalIP), chainMarkMasq)
	w("-A %s -m set --match-set %s dst,dst -j %s", chainServices, n(setLoadBalancer), chainLoadBalancer)
	w("-A %s -m addrtype --dst-type LOCAL -j %s", chainServices, chainNodePort)
	w("-A %s %s -j %s", chainLoadBalancer, local, chainMarkMasq)
	w("-A %s -m set --match-set %s dst,dst -j RETURN", chainLoadBalancer, n(setLoadBalancerLocal))
	w("-A %s -j %s", chainLoadBalancer, chainMarkMasq)
	for _, p := range []struct{ proto, local, all string }{
		{"tcp", setNodePortLocalTCP, setNodePortTCP},
		{"udp", setNodePortLocalUDP, setNodePortUDP},
	} {
		w("-A %s -p %s %s -m set --match-set %s dst -j %s", chainNodePort, p.proto, local, n(p.local), chainMarkMasq)
		w("-A %s -p %s -m set --match-set %s dst -j RETURN", chainNodePort, p.proto, n(p.local))
		w("-A %s -p %s -m set --match-set %s dst -j %s", chainNodePort, p.proto, n(p.all), chainMarkMasq)
	}
	w("-A %s -p sctp %s -m set --match-set %s dst,dst -j %s", chainNodePort, local, n(setNodePortLocalSCTP), chainMarkMasq)
	w("-A %s -p sctp -m set --match-set %s dst,dst -j RETURN", chainNodePort, n(setNodePortLocalSCTP))
	w("-A %s -p sctp -m set --match-set %s dst,dst -j %s", chainNodePort, n(setNodePortSCTP), chainMarkMasq)
	w("COMMIT")

	w("*filter")
	for _, c := range filterChains() {
		w(":%s - [0:0]", c)
	}
	w("-A %s -m conntrack --ctstate INVALID -j DROP", chainForward)
	w("-A %s -m mark --mark %s/%s -j ACCEPT", chainForward, mark, mark)
	w("-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", chainForward)
	w("-A %s -m set --match-set %s dst,dst -j %s", chainProxyFirewall, n(setLoadBalancerFW), chainSourceRangesFW)
	w("-A %s -m set --match-set %s dst,dst,src -j RETURN", chainSourceRangesFW, n(setLoadBalancerSourceCIDR))
	w("-A %s -m comment --comment \"source not in loadBalancerSourceRanges\" -j DROP", chainSourceRangesFW)
	// Local policies without a local endpoint (policy.go): new connections are
	// dropped before IPVS (LOCAL_IN) sees them, from everyone for a ClusterIP,
	// from outside the cluster for an external address.
	w("-A %s -m conntrack --ctstate NEW -m set --match-set %s dst,dst -m comment --comment \"internalTrafficPolicy Local without a local endpoint\" -j DROP",
		chainProxyFirewall, n(setClusterIPNoLocal))
	w("-A %s -m conntrack --ctstate NEW -m set --match-set %s dst,dst -j %s", chainProxyFirewall, n(setExternalNoLocal), chainExternalNoLocal)
	for _, c := range o.ClusterCIDRs {
		if c.Addr().Is6() == o.V6 {
			w("-A %s -s %s -m comment --comment \"pods short-circuit to cluster-wide endpoints\" -j RETURN", chainExternalNoLocal, c)
		}
	}
	w("-A %s %s -m comment --comment \"the node short-circuits to cluster-wide endpoints\" -j RETURN", chainExternalNoLocal, local)
	w("-A %s -m comment --comment \"externalTrafficPolicy Local without a local endpoint\" -j DROP", chainExternalNoLocal)
	for _, s := range []string{setLoadBalancer, setClusterIP, setExternalIP, setExternalIPLocal} {
		w("-A %s -m set --match-set %s dst,dst -j RETURN", chainIPVSFilter, n(s))
	}
	w("-A %s -m set --match-set %s dst -j RETURN", chainIPVSFilter, n(setHealthCheckNodePort))
	w("-A %s -m conntrack --ctstate NEW -m set --match-set %s dst -m comment --comment \"unserved port of a service address\" -j REJECT", chainIPVSFilter, n(setIPVSIPs))
	w("-A %s -m set --match-set %s dst -j ACCEPT", chainNodePortFilter, n(setHealthCheckNodePort))
	w("COMMIT")
	return b.String()
}

// renderFlush is the restore input that empties and deletes our chains, for Cleanup.
func renderFlush() string {
	var b strings.Builder
	b.WriteString("*nat\n")
	nat := natChains()
	for _, c := range nat {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range nat {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n*filter\n")
	filter := filterChains()
	for _, c := range filter {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range filter {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func natChains() []string {
	return []string{chainServices, chainPostrouting, chainNodePort, chainLoadBalancer, chainMarkMasq}
}

func filterChains() []string {
	return []string{chainForward, chainProxyFirewall, chainSourceRangesFW, chainIPVSFilter, chainNodePortFilter, chainExternalNoLocal}
}
