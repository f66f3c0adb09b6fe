//go:build linux

package nftables

import (
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
