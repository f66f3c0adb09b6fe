package nftables

import (
	"net/netip"
	"slices"
)

// ClusterIP validation, as kube-proxy 1.37's nftables mode does it: after DNAT
// (forward hook, and output at dstnat+10), a new connection still addressed to a
// ClusterIP used a port or protocol no Service defines and is rejected; one
// addressed inside a ServiceCIDR but to no ClusterIP is dropped. Both sets are
// plain elements: a Service change adds or deletes its ClusterIP in cluster-ips
// (reference-counted over its ports), a ServiceCIDR change rewrites only the
// service-cidrs elements that differ.

// renderClusterIPsCheck adds the two sets and the chain that uses them.
func renderClusterIPsCheck(o renderOptions, fr *fragment) {
	f := o.fam
	fr.sets = append(fr.sets,
		&set{name: setClusterIPs, kind: kindAddrSet},
		&set{name: setServiceCIDRs, kind: kindRangeSet})
	for _, r := range mergeRanges(o.serviceCIDRs) {
		fr.elems = append(fr.elems, rangeElem(setServiceCIDRs, r.start, r.end))
	}
	fr.addChain(&chain{name: chainClusterIPs, rules: []rule{
		// Plain reject, as kube-proxy: ICMP port unreachable, TCP included.
		{addrInSet{fam: f, daddr: true, set: setClusterIPs}, rejectStmt{fam: f}},
		{addrInSet{fam: f, daddr: true, set: setServiceCIDRs}, verdictDrop},
	}})
}

// serviceCIDRsRendered reports whether node, a node fragment rendered with options
// of the same key as o, holds the service-cidrs elements o renders: then
// renderNode(o) would render node again (key leaves only the ServiceCIDRs out).
func serviceCIDRsRendered(o renderOptions, node *fragment) bool {
	want := mergeRanges(o.serviceCIDRs)
	i := 0
	for _, e := range node.elems {
		if e.set() != setServiceCIDRs {
			continue
		}
		if i == len(want) || e != rangeElem(setServiceCIDRs, want[i].start, want[i].end) {
			return false
		}
		i++
	}
	return i == len(want)
}

// clusterIPElem is the cluster-ips element every ServicePort of a ClusterIP renders.
func clusterIPElem(a netip.Addr) elem { return elemSpec{set: setClusterIPs, addr: a}.elem() }

// addrRange is an inclusive range of addresses: an interval-set element.
type addrRange struct{ start, end netip.Addr }

// mergeRanges turns prefixes into sorted ranges that neither overlap nor touch:
// the kernel refuses overlapping intervals, and ServiceCIDRs may overlap.
func mergeRanges(ps []netip.Prefix) []addrRange {
	rs := make([]addrRange, 0, len(ps))
	for _, p := range ps {
		p = p.Masked()
		rs = append(rs, addrRange{start: p.Addr(), end: prefixEnd(p)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.start.Compare(b.start) })
	var out []addrRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].end.Is4() == r.start.Is4() {
			last := &out[n-1]
			next := last.end.Next()
			if !next.IsValid() || r.start.Compare(next) <= 0 { // overlaps or touches
				if r.end.Compare(last.end) > 0 {
					last.end = r.end
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// prefixEnd is the last address of a prefix.
func prefixEnd(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rangeText prints a range as nft lists it: an address, a prefix, or start-end.
func rangeText(start, end netip.Addr) string {
	if start == end {
		return start.String()
	}
	for bits := 0; bits <= start.BitLen(); bits++ {
		if p := netip.PrefixFrom(start, bits); p.Masked().Addr() == start && prefixEnd(p) == end {
			return p.String()
		}
	}
	return start.String() + "-" + end.String()
}
