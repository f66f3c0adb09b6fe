//go:build linux

package nftables

import (
	"net/netip"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

func testDiff(refs refCounts, changes ...[2]*fragment) *diff {
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
	refs := refCounts{}
	var buf []byte
	for _, fr := range []*fragment{a, b} {
		for _, e := range fr.elems {
			refs[e.ref(&buf)]++
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
	d := testDiff(refCounts{}, [2]*fragment{renderOne(o, s, eps...), renderOne(o, s, eps...)})
	if !d.empty() {
		t.Fatalf("diff of identical renderings is not empty: %+v", d)
	}
}

func TestDiffEndpointMovedRewritesOnlyItsSlot(t *testing.T) {
	o := testOptions(familyIPv4)
	s := spec{name: "web", clusterIP: "10.96.0.1", port: 80}
	before := renderOne(o, s, ep("10.244.1.1", 80), ep("10.244.1.2", 80))
	after := renderOne(o, s, ep("10.244.1.1", 80), ep("10.244.1.3", 80))
	d := testDiff(refCounts{}, [2]*fragment{before, after})
	if len(d.addChains)+len(d.ruleChains)+len(d.flushChains) != 0 {
		t.Fatalf("an endpoint move on the shared path touched chains: %+v", d)
	}
	for _, e := range d.addElems {
		if e.set() == mapServiceEndpoints && e.to().Addr().String() != "10.244.1.3" {
			t.Fatalf("unexpected slot rewrite %s", e.text())
		}
	}
}

func TestElemRefIsTheKeyWithoutTheValue(t *testing.T) {
	a := netip.MustParseAddr("10.96.0.1")
	baseSpec := elemSpec{set: mapServiceIPs, addr: a, proto: l4TCP, port: 80, verdict: "goto pick-1"}
	base := baseSpec.elem()
	var buf []byte
	baseSpec.verdict = "goto pick-2"
	same := baseSpec.elem()
	if base.ref(&buf) != same.ref(&buf) {
		t.Errorf("%s and %s: different references for one kernel element", base.text(), same.text())
	}
	slotA := elemSpec{set: mapServiceEndpoints, addr: a, proto: l4TCP, port: 80, slot: true, index: 1,
		to: netip.MustParseAddrPort("10.244.0.1:8080")}.elem()
	slotB := elemSpec{set: mapServiceEndpoints, addr: a, proto: l4TCP, port: 80, slot: true, index: 1,
		to: netip.MustParseAddrPort("10.244.0.2:8081")}.elem()
	if slotA.ref(&buf) != slotB.ref(&buf) {
		t.Errorf("%s and %s: different references for one kernel element", slotA.text(), slotB.text())
	}
	others := []elem{
		elemSpec{set: setMasqServices, addr: a, proto: l4TCP, port: 80}.elem(),
		elemSpec{set: mapServiceIPs, addr: a, proto: l4UDP, port: 80}.elem(),
		elemSpec{set: mapServiceIPs, addr: a, proto: l4TCP, port: 81}.elem(),
		elemSpec{set: mapServiceIPs, addr: netip.MustParseAddr("10.96.0.2"), proto: l4TCP, port: 80}.elem(),
		elemSpec{set: mapServiceEndpoints, addr: a, proto: l4TCP, port: 80, slot: true, index: 1}.elem(),
		elemSpec{set: mapServiceEndpoints, addr: a, proto: l4TCP, port: 80, slot: true, index: 2}.elem(),
		pairElem(setHairpin, a, a),
		pairElem(setHairpin, a, netip.MustParseAddr("10.96.0.2")),
	}
	seen := map[elemRef]string{base.ref(&buf): base.key()}
	for _, e := range others {
		r := e.ref(&buf)
		if k, dup := seen[r]; dup {
			t.Errorf("%s and %s share a reference", k, e.key())
		}
		seen[r] = e.key()
	}
}
