package fakeconntrack

import (
	"errors"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/conntrack"
)

func TestDeleteRemovesOnlyMatchingFlows(t *testing.T) {
	stale := UDP("10.0.0.1:40000", "10.96.0.10:53", "10.244.1.5:53")
	kept := UDP("10.0.0.1:40001", "10.96.0.10:53", "10.244.1.6:53")
	otherPort := UDP("10.0.0.1:40002", "10.96.0.10:53", "10.244.1.5:54")
	nodePort := UDP("10.0.0.2:40000", "192.168.1.1:30053", "10.244.1.5:53")
	v6 := UDP("[fd00::1]:40000", "[fd00::10]:30053", "[fd00::5]:53")
	var tbl Table
	tbl.Add(stale, kept, otherPort, nodePort, v6)
	n, err := tbl.Delete([]conntrack.Filter{
		{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53, Endpoint: netip.MustParseAddrPort("10.244.1.5:53")},
		{Protocol: 17, OrigDstPort: 30053, Endpoint: netip.MustParseAddrPort("10.244.1.5:53")},
	})
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	for _, f := range []Flow{stale, nodePort} {
		if tbl.Has(f) {
			t.Errorf("%s not deleted", f)
		}
	}
	for _, f := range []Flow{kept, otherPort, v6} {
		if !tbl.Has(f) {
			t.Errorf("%s deleted", f)
		}
	}
	// A filter without endpoint takes every flow to the address, in its family only.
	if n, _ := tbl.Delete([]conntrack.Filter{{Protocol: 17, OrigDstPort: 30053}}); n != 0 || !tbl.Has(v6) {
		t.Fatalf("an address-less filter reached the IPv6 table (%d deleted)", n)
	}
	if len(tbl.Calls()) != 2 || len(tbl.Filters()) != 3 {
		t.Fatalf("calls %v", tbl.Calls())
	}
}

func TestDeleteErrorKeepsFlows(t *testing.T) {
	f := UDP("10.0.0.1:40000", "10.96.0.10:53", "10.244.1.5:53")
	tbl := Table{Err: errors.New("boom")}
	tbl.Add(f)
	if _, err := tbl.Delete([]conntrack.Filter{{Protocol: 17, OrigDstPort: 53}}); err == nil || !tbl.Has(f) {
		t.Fatalf("err %v, flows %v", err, tbl.Flows())
	}
}
