//go:build linux

package nftables

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakenft"
)

// The model keeps only the fragments it cannot render again (chains, sets,
// verdicts, slot layouts); the others are rendered again from the applied
// snapshot. Through a run of partial syncs on the fake kernel, each building on
// the last (Services moving between the shared path and chains of their own,
// sharing an endpoint, losing their endpoints, going and coming back): after
// every sync the tables are what a fresh full sync writes, the model keeps
// exactly the non-derivable fragments with the totals of a full render, and the
// self-check's read-back finds both tables intact.
func TestPartialSyncsFromDerivedFragmentsEqualAFreshFullSync(t *testing.T) {
	a := &spec{name: "a", clusterIP: "10.96.0.10", port: 80, nodePort: 30010}
	b := &spec{name: "b", clusterIP: "10.96.0.11", port: 80, external: []string{"192.0.2.7"}}
	c := &spec{name: "c", proto: "UDP", clusterIP: "10.96.0.12", port: 53}
	v6 := &spec{name: "v6", clusterIP: "fd00:96::12", port: 80}
	shared := ep("10.244.9.9", 8080) // an endpoint of a and b: one hairpin pair, two owners
	cur := map[*spec][]state.Endpoint{
		a:  {ep("10.244.1.2", 8080), shared},
		b:  {shared},
		c:  {ep("10.244.3.2", 53), ep("10.244.3.3", 53)},
		v6: {ep("fd00:244::2", 8080)},
	}
	rr := *a
	rr.scheduler = "rr"
	steps := []struct {
		name  string
		touch []*spec
		edit  func()
	}{
		{"endpoint added", []*spec{c}, func() { cur[c] = append(cur[c], ep("10.244.3.4", 53)) }},
		{"to chains of its own", []*spec{a}, func() { cur[&rr] = cur[a]; delete(cur, a) }},
		{"shared endpoint leaves one owner", []*spec{b}, func() { cur[b] = []state.Endpoint{ep("10.244.2.5", 8080)} }},
		{"back to the shared path", []*spec{&rr}, func() { cur[a] = cur[&rr]; delete(cur, &rr) }},
		{"last endpoint gone", []*spec{c}, func() { cur[c] = nil }},
		{"service deleted", []*spec{b}, func() { delete(cur, b) }},
		{"service back, endpoint shared again", []*spec{b, v6}, func() {
			cur[b] = []state.Endpoint{shared}
			cur[v6] = []state.Endpoint{ep("fd00:244::3", 8080)}
		}},
	}
	k := fakenft.New()
	p := fakeProxier(t, k)
	syncOn(t, p, snapshotOf(cur))
	for _, st := range steps {
		st.edit()
		var names []state.ServicePortName
		for _, s := range st.touch {
			names = append(names, s.portName())
		}
		snap := snapshotOf(cur)
		if syncOn(t, p, snap, names...) {
			t.Fatalf("%s: want a partial sync", st.name)
		}
		fresh := fakenft.New()
		syncOn(t, fakeProxier(t, fresh), snapshotOf(cur))
		for i, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
			ts := p.tables[i]
			got := withoutStale(t, k.Dump(fam, tableName), ts)
			if want := fresh.Dump(fam, tableName); got != strings.TrimSuffix(want, "\n") && got != want {
				t.Fatalf("%s: family %d after the partial sync:\n%s\nfresh full sync:\n%s", st.name, fam, got, want)
			}
			all := renderAll(ts.opts, dataplane.NewRequest(snap))
			kept := 0
			for _, fr := range all.services {
				if !fr.derivable() {
					kept++
				}
			}
			if len(ts.applied.services) != kept {
				t.Errorf("%s: family %d keeps %d fragments, want the %d non-derivable ones", st.name, fam, len(ts.applied.services), kept)
			}
			if ts.applied.rules != all.rules || ts.applied.objects != all.objects {
				t.Errorf("%s: family %d totals %d rules, %d objects; a full render has %d, %d",
					st.name, fam, ts.applied.rules, ts.applied.objects, all.rules, all.objects)
			}
		}
		// The stale objects of this sync go with the next one; a resync with no
		// change deletes them, then the read-back must find each table intact.
		if syncOn(t, p, snap) {
			t.Fatalf("%s: the resync was full", st.name)
		}
		for i, ts := range p.tables {
			if why, err := ts.intact(); err != nil || why != "" {
				t.Fatalf("%s: table %d read back: %q, %v", st.name, i, why, err)
			}
		}
	}
}

// A rule that looks up a data map makes the kernel walk every element the map
// already holds in the transaction, once per chain (nf_tables_bind_set). The
// full sync streams elements while it renders, so every rule binding a shared
// map (the pick chains, and the own pick chains of Services with more endpoints
// than the shared chains serve, here in the middle of the name order) must come
// before the first element of that map.
func TestFullSyncBindsSharedMapsBeforeTheirElements(t *testing.T) {
	specs := map[*spec][]state.Endpoint{}
	// Enough small Services before the large ones for their elements to fill
	// element messages (elemChunk) before the large ones are rendered.
	for i := range 3 * elemChunk {
		s := &spec{name: fmt.Sprintf("s%04d", i), clusterIP: fmt.Sprintf("10.96.%d.%d", 2+i/250, 1+i%250), port: 80,
			nodePort: int32(30010 + i)}
		specs[s] = []state.Endpoint{ep(fmt.Sprintf("10.244.%d.%d", 1+i/250, 1+i%250), 8080)}
	}
	for i, name := range []string{"s0900-large", "s1100-large"} {
		var eps []state.Endpoint
		for j := range maxSharedPick + 5 {
			eps = append(eps, ep(fmt.Sprintf("10.245.%d.%d", i, j+1), 8080))
		}
		specs[&spec{name: name, clusterIP: fmt.Sprintf("10.96.1.%d", i+1), port: 80, nodePort: int32(30100 + i)}] = eps
	}
	snap := snapshotOf(specs)
	k := fakenft.New()
	syncOn(t, fakeProxier(t, k), snap)
	binders := map[string]bool{} // chains with a rule that looks up a data map
	want := 0                    // their rules
	for _, fr := range renderAll(testOptions(familyIPv4), dataplane.NewRequest(snap)).fragmentsInOrder() {
		for _, c := range fr.chains {
			for _, r := range c.rules {
				for _, st := range r {
					if _, ok := st.(slotDnat); ok && !binders[c.name] {
						binders[c.name] = true
						want += len(c.rules)
					}
				}
			}
		}
	}
	if len(binders) != 3*maxSharedPick+4 { // the pick chains, and two of each large Service
		t.Fatalf("%d chains bind the shared data maps, want %d", len(binders), 3*maxSharedPick+4)
	}
	var full fakenft.Batch
	for _, b := range k.Batches() {
		if len(b.Ops) > 0 && strings.Contains(strings.Join(b.Ops, "\n"), "add element ip kproxy "+mapServiceEndpoints) {
			full = b
		}
	}
	firstElem := map[string]int{}
	bound := 0
	for i, op := range full.Ops {
		f := strings.Fields(op)
		if len(f) < 5 || f[2] != "ip" {
			continue
		}
		switch {
		case f[0] == "add" && f[1] == "element":
			if _, seen := firstElem[f[4]]; !seen {
				firstElem[f[4]] = i
			}
		case f[0] == "add" && f[1] == "rule" && binders[f[4]]:
			bound++
			for _, m := range []string{mapServiceEndpoints, mapNodePortEndpoints} {
				if at, seen := firstElem[m]; seen {
					t.Fatalf("rule of chain %s (op %d) comes after element op %d of %s", f[4], i, at, m)
				}
			}
		}
	}
	if bound != want {
		t.Fatalf("the full sync added %d rules to the chains that bind the shared data maps, want %d", bound, want)
	}
}
