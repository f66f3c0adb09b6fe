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

// familySetName is the name of a base set in the family.
func familySetName(base string, v6 bool) string {
	if v6 {
		return setName(base, netip.IPv6Unspecified())
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
// tolerating sets that exist (the restore runs with -exist, which accepts an
// existing set only when its maxelem is the one given: size returns it).
func renderCreate(v6 bool, size func(name string) setSize) string {
	var b strings.Builder
	for _, d := range setDefs {
		name := familySetName(d.Name, v6)
		b.WriteString(d.createLine(name, v6, size(name)))
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
// its ports being allowed. A set in grown (set name to renderGrow text; only sets
// with additions grow) is replaced where its additions would go, by a set
// already holding them.
func (d setDiff) render(grown map[string]string) string {
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
	done := map[string]bool{}
	for _, e := range d.Add {
		if text, ok := grown[e.Set]; ok {
			if !done[e.Set] {
				b.WriteString(text)
				done[e.Set] = true
			}
			continue
		}
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

// counts counts the entries of each set.
func (m setModel) counts() map[string]int {
	out := map[string]int{}
	for e := range m {
		out[e.Set]++
	}
	return out
}

// entries lists the entries of one set.
func (m setModel) entries(set string) []string {
	var out []string
	for e := range m {
		if e.Set == set {
			out = append(out, e.Entry)
		}
	}
	return out
}

// count applies d to per-set counts of entries.
func (d setDiff) count(counts map[string]int) {
	for _, e := range d.Add {
		counts[e.Set]++
	}
	for _, e := range d.Del {
		counts[e.Set]--
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
