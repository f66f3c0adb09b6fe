//go:build linux

package nftables

import (
	"fmt"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// selectSlots maps slot index to endpoint chain for one fragment's select map.
func selectSlots(fr *fragment) map[uint32]string {
	out := map[uint32]string{}
	for _, e := range fr.elems {
		if strings.HasPrefix(e.set(), "select-") {
			out[e.index] = e.verdict()
		}
	}
	return out
}

func mhEndpoints(n int) []state.Endpoint {
	var eps []state.Endpoint
	for i := range n {
		eps = append(eps, ep(fmt.Sprintf("10.244.%d.1", i+1), 8080))
	}
	return eps
}

// The select map is lb's Maglev table: every slot goes where MaglevTable says.
func TestMHFillsMaglevTable(t *testing.T) {
	s := spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh"}
	eps := mhEndpoints(3)
	fr := renderOne(testOptions(familyIPv4), s, eps...)
	slots := selectSlots(fr)
	if len(slots) != 4093 {
		t.Fatalf("select map has %d slots, want the default 4093", len(slots))
	}
	var bs []lb.Backend
	for _, e := range eps {
		bs = append(bs, lb.Backend{Addr: e.AddrPort(), Weight: e.Weight})
	}
	table, err := lb.MaglevTable(bs, 4093)
	if err != nil {
		t.Fatal(err)
	}
	names := newPortNames(s.servicePort().Name)
	for i, b := range table {
		if want := "goto " + names.endpoint(eps[b].AddrPort()); slots[uint32(i)] != want {
			t.Fatalf("slot %d: %q, want %q", i, slots[uint32(i)], want)
		}
	}
	rules := strings.Join(fragmentLines(familyIPv4, fr), "\n")
	if !strings.Contains(rules, "jhash ip saddr mod 4093 seed") {
		t.Fatalf("no jhash over the source address mod 4093:\n%s", rules)
	}
	if len(fr.warnings) != 0 {
		t.Fatalf("mh warned: %v", fr.warnings)
	}
}

// Removing one endpoint rewrites only the slots that moved (about its share), never
// the whole map.
func TestMHRemovalRewritesOnlyMovedSlots(t *testing.T) {
	o := testOptions(familyIPv4)
	s := spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh"}
	eps := mhEndpoints(5)
	before := renderOne(o, s, eps...)
	after := renderOne(o, s, append(append([]state.Endpoint{}, eps[:2]...), eps[3:]...)...)
	gone := "goto " + newPortNames(s.servicePort().Name).endpoint(eps[2].AddrPort())
	owned := 0
	for _, v := range selectSlots(before) {
		if v == gone {
			owned++
		}
	}
	d := testDiff(refCounts{}, [2]*fragment{before, after})
	rewritten := 0
	for _, e := range d.addElems {
		if strings.HasPrefix(e.set(), "select-") {
			rewritten++
		}
	}
	if rewritten < owned || float64(rewritten) > 1.5*float64(owned) {
		t.Fatalf("removing 1 of 5 endpoints rewrote %d slots; it owned %d", rewritten, owned)
	}
	for _, e := range d.delElems {
		if strings.HasPrefix(e.set(), "select-") && e.verdict() != gone && selectSlots(after)[e.index] == e.verdict() {
			t.Fatalf("slot %d deleted though unchanged", e.index)
		}
	}
	t.Logf("removing 1 of 5 endpoints rewrote %d of 4093 slots (it owned %d)", rewritten, owned)
}

func TestMHWeightsAndTableSize(t *testing.T) {
	o := testOptions(familyIPv4)
	o.mhTableSize = 1009
	s := spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh"}
	fr := renderOne(o, s, ep("10.244.1.1", 80, "w3"), ep("10.244.2.1", 80, "w1"))
	c := map[string]int{}
	for _, v := range selectSlots(fr) {
		c[v]++
	}
	names := newPortNames(s.servicePort().Name)
	a := c["goto "+names.endpoint(ep("10.244.1.1", 80).AddrPort())]
	b := c["goto "+names.endpoint(ep("10.244.2.1", 80).AddrPort())]
	if a+b != 1009 || float64(a) < 2.8*float64(b) || float64(a) > 3.2*float64(b) {
		t.Fatalf("weights 3:1 gave slots %d:%d of 1009", a, b)
	}
	for n, want := range map[int]int{1: 4093, 409: 4093, 410: 16381, 1639: 65521, 100000: 65521} {
		if got := mhTableSize(n); got != want {
			t.Errorf("mhTableSize(%d) = %d, want %d", n, got, want)
		}
	}
}
