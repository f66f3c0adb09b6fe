package nftables

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// Overlapping, nested and touching ServiceCIDRs become disjoint intervals (the
// kernel refuses overlaps), printed as nft lists them.
func TestMergeRanges(t *testing.T) {
	got := mergeRanges(prefixes("10.97.0.0/16", "10.96.5.0/24", "10.96.0.0/16", "10.100.1.0/24", "10.100.0.0/24",
		"10.100.3.0/24", "10.110.0.0/24", "10.110.1.0/24", "10.110.2.0/24", "10.120.0.7/32",
		"fd00:96::/112", "fd00:96::1:0/112", "0.0.0.0/0"))
	var texts []string
	for _, r := range got {
		texts = append(texts, rangeText(r.start, r.end))
	}
	want := "0.0.0.0/0 fd00:96::/111"
	if s := strings.Join(texts, " "); s != want {
		t.Fatalf("with 0.0.0.0/0: %s, want %s", s, want)
	}
	got = mergeRanges(prefixes("10.97.0.0/16", "10.96.5.0/24", "10.96.0.0/16", "10.100.1.0/24", "10.100.0.0/24",
		"10.100.3.0/24", "10.110.0.0/24", "10.110.1.0/24", "10.110.2.0/24", "10.120.0.7/32"))
	texts = nil
	for _, r := range got {
		texts = append(texts, rangeText(r.start, r.end))
	}
	want = "10.96.0.0/15 10.100.0.0/23 10.100.3.0/24 10.110.0.0-10.110.2.255 10.120.0.7"
	if s := strings.Join(texts, " "); s != want {
		t.Fatalf("merged ranges %s, want %s", s, want)
	}
}

func TestRenderNodeServiceCIDRsGolden(t *testing.T) {
	o := testOptions(familyIPv4)
	cfg := nodeConfig{masqMark: o.masqMark, clusterCIDRs: o.clusterCIDRs}
	opts := cfg.families(nil, prefixes("10.96.0.0/16", "10.96.128.0/17", "10.98.0.0/24", "fd00:96::/112"))
	o.serviceCIDRs = opts[0].serviceCIDRs
	if fmt.Sprint(opts[1].serviceCIDRs) != "[fd00:96::/112]" {
		t.Fatalf("ip6 options got %v, want only the IPv6 prefix", opts[1].serviceCIDRs)
	}
	var lines []string
	for _, l := range fragmentLines(o.fam, renderNode(o)) {
		if strings.Contains(l, "cluster-ips") || strings.Contains(l, "service-cidrs") || strings.Contains(l, "post-dnat") ||
			strings.Contains(l, "filter-forward") {
			lines = append(lines, l)
		}
	}
	checkGolden(t, "node-service-cidrs", strings.Join(lines, "\n")+"\n")
	if o.key() != testOptions(familyIPv4).key() {
		t.Fatal("ServiceCIDRs are part of the options key: a ServiceCIDR change would force a full sync")
	}
}

// Every port of a Service renders its ClusterIP into cluster-ips; the element is
// shared (reference-counted), and another family's table gets none.
func TestRenderServiceAddsClusterIP(t *testing.T) {
	fr := renderOne(testOptions(familyIPv4), spec{name: "empty", clusterIP: "10.96.0.11", port: 80}) // no endpoints
	found := false
	for _, e := range fr.elems {
		found = found || (e.set() == setClusterIPs && e.addr() == netip.MustParseAddr("10.96.0.11"))
	}
	if !found {
		t.Fatalf("a Service without endpoints left its ClusterIP out of cluster-ips: %v", fragmentLines(familyIPv4, fr))
	}
}

// A partial sync reuses the applied node fragment unless the ServiceCIDRs it was
// rendered with differ from the new ones (serviceCIDRsRendered).
func TestServiceCIDRsRenderedComparesTheIntervals(t *testing.T) {
	o := testOptions(familyIPv4)
	o.serviceCIDRs = prefixes("10.96.0.0/16", "10.98.0.0/24")
	node := renderNode(o)
	for _, c := range []struct {
		cidrs []netip.Prefix
		want  bool
	}{
		{prefixes("10.96.0.0/16", "10.98.0.0/24"), true},
		{prefixes("10.98.0.0/24", "10.96.0.0/16", "10.96.1.0/24"), true}, // same intervals once merged
		{prefixes("10.96.0.0/16"), false},
		{prefixes("10.96.0.0/16", "10.98.0.0/23"), false},
		{prefixes("10.96.0.0/16", "10.98.0.0/24", "10.99.0.0/24"), false},
		{nil, false},
	} {
		n := o
		n.serviceCIDRs = c.cidrs
		if got := serviceCIDRsRendered(n, node); got != c.want {
			t.Errorf("%v against a node of %v: %v, want %v", c.cidrs, o.serviceCIDRs, got, c.want)
		}
	}
	o.serviceCIDRs = nil
	if !serviceCIDRsRendered(o, renderNode(o)) {
		t.Error("no ServiceCIDRs against a node rendered without any: false, want true")
	}
}
