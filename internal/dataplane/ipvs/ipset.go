//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The ipsets of IPVS mode, with kube-proxy's names (IPv4; IPv6 sets are prefixed
// KUBE6-, which keeps every name within ipset's 31 characters). The iptables rules
// in rules.go match them.
const (
	setLoopBack               = "KUBE-LOOP-BACK"
	setClusterIP              = "KUBE-CLUSTER-IP"
	setExternalIP             = "KUBE-EXTERNAL-IP"
	setExternalIPLocal        = "KUBE-EXTERNAL-IP-LOCAL"
	setLoadBalancer           = "KUBE-LOAD-BALANCER"
	setLoadBalancerLocal      = "KUBE-LOAD-BALANCER-LOCAL"
	setLoadBalancerFW         = "KUBE-LOAD-BALANCER-FW"
	setLoadBalancerSourceCIDR = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	setNodePortTCP            = "KUBE-NODE-PORT-TCP"
	setNodePortLocalTCP       = "KUBE-NODE-PORT-LOCAL-TCP"
	setNodePortUDP            = "KUBE-NODE-PORT-UDP"
	setNodePortLocalUDP       = "KUBE-NODE-PORT-LOCAL-UDP"
	setNodePortSCTP           = "KUBE-NODE-PORT-SCTP-HASH"
	setNodePortLocalSCTP      = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	setHealthCheckNodePort    = "KUBE-HEALTH-CHECK-NODE-PORT"
	setIPVSIPs                = "KUBE-IPVS-IPS"
	// kproxy's own (policy.go): Local policies without a local endpoint.
	setClusterIPNoLocal = "KUBE-CLUSTER-IP-NO-LOCAL"
	setExternalNoLocal  = "KUBE-EXTERNAL-NO-LOCAL"
)

// setDef is one ipset's type and comment.
type setDef struct {
	Name    string
	Type    string
	Comment string
}

var setDefs = []setDef{
	{setLoopBack, "hash:ip,port,ip", "endpoint IP:port with itself as source, for hairpin masquerade"},
	{setClusterIP, "hash:ip,port", "Kubernetes service cluster IP + port for masquerade purpose"},
	{setExternalIP, "hash:ip,port", "Kubernetes service external IP + port for masquerade and filter purpose"},
	{setExternalIPLocal, "hash:ip,port", "Kubernetes service external IP + port with externalTrafficPolicy=local"},
	{setLoadBalancer, "hash:ip,port", "Kubernetes service lb portal"},
	{setLoadBalancerLocal, "hash:ip,port", "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
	{setLoadBalancerFW, "hash:ip,port", "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
	{setLoadBalancerSourceCIDR, "hash:ip,port,net", "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
	{setNodePortTCP, "bitmap:port", "Kubernetes nodeport TCP port for masquerade purpose"},
	{setNodePortLocalTCP, "bitmap:port", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
	{setNodePortUDP, "bitmap:port", "Kubernetes nodeport UDP port for masquerade purpose"},
	{setNodePortLocalUDP, "bitmap:port", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
	{setNodePortSCTP, "hash:ip,port", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
	{setNodePortLocalSCTP, "hash:ip,port", "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
	{setHealthCheckNodePort, "bitmap:port", "Kubernetes health check node port"},
	{setIPVSIPs, "hash:ip", "Addresses on kube-ipvs0, for filtering traffic to their unserved ports"},
	{setClusterIPNoLocal, "hash:ip,port", "cluster IP + port with internalTrafficPolicy=Local and no local endpoint"},
	{setExternalNoLocal, "hash:ip,port", "external address + port with externalTrafficPolicy=Local and no local endpoint"},
}

// setName is the family-specific name of a base set, decided by the family of a.
func setName(base string, a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "KUBE6-" + strings.TrimPrefix(base, "KUBE-")
	}
	return base
}

// allSetNames lists every set name of both families.
func allSetNames() []string {
	var out []string
	for _, d := range setDefs {
		out = append(out, d.Name, setName(d.Name, netip.IPv6Unspecified()))
	}
	return out
}

// renderCreate is the `ipset restore` text that creates every set of a family,
// tolerating sets that exist (the restore runs with -exist).
func renderCreate(v6 bool) string {
	var b strings.Builder
	for _, d := range setDefs {
		name, family := d.Name, "inet"
		if v6 {
			name, family = setName(d.Name, netip.IPv6Unspecified()), "inet6"
		}
		switch {
		case strings.HasPrefix(d.Type, "bitmap:port"):
			fmt.Fprintf(&b, "create %s %s range 0-65535 comment\n", name, d.Type)
		default:
			fmt.Fprintf(&b, "create %s %s family %s hashsize 1024 maxelem 65536 comment\n", name, d.Type, family)
		}
	}
	return b.String()
}

// setDiff is the entries to add and delete.
type setDiff struct {
	Add, Del []setEntry
}

func (d setDiff) empty() bool { return len(d.Add) == 0 && len(d.Del) == 0 }

// render returns `ipset restore -exist` text. KUBE-IPVS-IPS makes KUBE-IPVS-FILTER
// reject new connections to Service addresses whose port is in no other set, so
// its entries are deleted first and added last: no address is ever in it without
// its ports being allowed.
func (d setDiff) render() string {
	var b strings.Builder
	sortEntries(d.Del)
	sortEntries(d.Add)
	ipsFirst := func(es []setEntry, first bool) {
		sort.SliceStable(es, func(i, j int) bool {
			return isIPVSIPs(es[i].Set) == first && isIPVSIPs(es[j].Set) != first
		})
	}
	ipsFirst(d.Del, true)
	ipsFirst(d.Add, false)
	for _, e := range d.Del {
		fmt.Fprintf(&b, "del %s %s\n", e.Set, e.Entry)
	}
	for _, e := range d.Add {
		fmt.Fprintf(&b, "add %s %s\n", e.Set, e.Entry)
	}
	return b.String()
}

func isIPVSIPs(set string) bool { return strings.HasSuffix(set, "IPVS-IPS") }

func sortEntries(es []setEntry) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Set != es[j].Set {
			return es[i].Set < es[j].Set
		}
		return es[i].Entry < es[j].Entry
	})
}

// setModel counts how many ServicePorts want each entry: a ClusterIP is shared by
// every port of its Service, and the entry goes only when the last one does.
type setModel map[setEntry]int

// apply adds one port's entries (delta +1) or removes them (delta -1) and records
// entries that appear or vanish in d.
func (m setModel) apply(entries []setEntry, delta int, d *setDiff) {
	for _, e := range entries {
		before := m[e]
		after := before + delta
		if after <= 0 {
			delete(m, e)
		} else {
			m[e] = after
		}
		switch {
		case before == 0 && after > 0:
			d.Add = append(d.Add, e)
		case before > 0 && after <= 0:
			d.Del = append(d.Del, e)
		}
	}
}

// parseSave reads `ipset save` output into entries of our sets.
func parseSave(text string) map[setEntry]bool {
	ours := map[string]bool{}
	for _, n := range allSetNames() {
		ours[n] = true
	}
	out := map[setEntry]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "add" && ours[f[1]] {
			out[setEntry{f[1], normalizeEntry(f[2])}] = true
		}
	}
	return out
}

// normalizeEntry matches the form ipset prints to the form we render: ipset prints
// bitmap ports as numbers and hash entries with the protocol name, as we write them.
func normalizeEntry(e string) string { return e }
