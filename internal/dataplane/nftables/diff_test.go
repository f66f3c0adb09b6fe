//go:build linux

package nftables

import (
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

func testDiff(refs map[string]int, changes ...[2]*fragment) *diff {
	t := &tableSync{staleChains: map[string]bool{}, staleSets: map[string]bool{}, kinds: map[string]setKind{}}
	d := newDiff(t, map[string]bool{})
	for _, c := range changes {
		d.add(c[0], c[1], nil)
	}
	d.resolveRefs(refs)
	return d
}

func elemKeys(es []elem) string {
	var out []string
	for _, e := range es {
		out = append(out, e.key())
	}
	return strings.Join(out, ",")
}

func TestDiffSharedElementStaysWhileAnotherOwnerNeedsIt(t *testing.T) {
	o := testOptions(familyIPv4)
	shared := ep("10.244.1.1", 8080)
	a := renderOne(o, spec{name: "a", clusterIP: "10.96.0.1", port: 80}, shared)
	b := renderOne(o, spec{name: "b", clusterIP: "10.96.0.2", port: 80}, shared)
	refs := map[string]int{}
	for _, fr := range []*fragment{a, b} {
		for _, e := range fr.elems {
			refs[e.key()]++
		}
	}
	d := testDiff(refs, [2]*fragment{a, nil})
	if strings.Contains(elemKeys(d.delElems), setHairpin) {
		t.Fatalf("removing Service a deleted the hairpin pair Service b still uses: %s", elemKeys(d.delElems))
	}
	if !strings.Contains(elemKeys(d.delElems), "10.96.0.1 . tcp . 80") {
		t.Fatalf("removing Service a left its elements: %s", elemKeys(d.delElems))
	}
	d = testDiff(refs, [2]*fragment{b, nil})
	if !strings.Contains(elemKeys(d.delElems), setHairpin) {
		t.Fatalf("removing the last user kept the hairpin pair: %s", elemKeys(d.delElems))
	}
}

func TestDiffUnchangedIsEmpty(t *testing.T) {
	o := testOptions(familyIPv4)
	s := spec{name: "rr", clusterIP: "10.96.0.1", port: 80, scheduler: "rr", nodePort: 30001}
	eps := []state.Endpoint{ep("10.244.1.1", 80), ep("10.244.1.2", 80)}
	d := testDiff(map[string]int{}, [2]*fragment{renderOne(o, s, eps...), renderOne(o, s, eps...)})
	if !d.empty() {
		t.Fatalf("diff of identical renderings is not empty: %+v", d)
	}
}

func TestDiffEndpointMovedRewritesOnlyItsSlot(t *testing.T) {
	o := testOptions(familyIPv4)
	s := spec{name: "web", clusterIP: "10.96.0.1", port: 80}
	before := renderOne(o, s, ep("10.244.1.1", 80), ep("10.244.1.2", 80))
	after := renderOne(o, s, ep("10.244.1.1", 80), ep("10.244.1.3", 80))
	d := testDiff(map[string]int{}, [2]*fragment{before, after})
	if len(d.addChains)+len(d.ruleChains)+len(d.flushChains) != 0 {
		t.Fatalf("an endpoint move on the shared path touched chains: %+v", d)
	}
	for _, e := range d.addElems {
		if e.set == mapServiceEndpoints && e.to.Addr().String() != "10.244.1.3" {
			t.Fatalf("unexpected slot rewrite %s", e.text())
		}
	}
}
