//go:build linux

package nftables

import (
	"context"
	"strings"
	"testing"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakenft"
)

// fakeProxier returns a Proxier, driven through the core, whose table syncs talk to
// the fake kernel k.
func fakeProxier(t *testing.T, k *fakenft.Kernel) *coreProxier {
	t.Helper()
	p, err := newCoreProxier(testDPOptions())
	if err != nil {
		t.Fatal(err)
	}
	p.useConns(func() (nfConn, error) { return k.Conn(), nil })
	return p
}

func syncOn(t *testing.T, p *coreProxier, snap *state.Snapshot, changed ...state.ServicePortName) bool {
	t.Helper()
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for _, n := range changed {
		cs.Ports[n] = struct{}{}
	}
	st, err := p.Sync(context.Background(), snap, cs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return st.Full
}

// withoutStale drops the chains and sets a partial sync flushed and leaves for the
// next sync to delete, after checking they are indeed empty.
func withoutStale(t *testing.T, dump string, ts *tableSync) string {
	t.Helper()
	var out []string
	skipping := false
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "\tchain ") || strings.HasPrefix(l, "\tset ") {
			name := strings.Fields(l)[1]
			skipping = ts.staleChains[name] || ts.staleSets[name]
			if skipping {
				continue
			}
		}
		if skipping {
			if strings.HasPrefix(l, "\t\t") {
				t.Errorf("stale object still holds %q", l)
			}
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestPartialSyncLeavesWhatAFullSyncWrites runs a full sync then a one-Service
// partial sync on the fake kernel, and checks that the transaction touched only that
// Service's objects and left both tables as a fresh full sync writes them (apart from
// the flushed objects the next sync deletes).
func TestPartialSyncLeavesWhatAFullSyncWrites(t *testing.T) {
	a := &spec{name: "a", clusterIP: "10.96.0.10", port: 80}
	b := &spec{name: "b", clusterIP: "10.96.0.11", port: 80, nodePort: 30011}
	c := &spec{name: "c", proto: "UDP", clusterIP: "10.96.0.12", port: 53, external: []string{"192.0.2.7"}}
	d := &spec{name: "d", clusterIP: "10.96.0.13", port: 80}
	before := map[*spec][]state.Endpoint{
		a: {ep("10.244.1.2", 8080), ep("10.244.1.3", 8080)},
		b: {ep("10.244.2.2", 8080)},
		c: {ep("10.244.3.2", 53)},
	}
	steps := []struct {
		name  string
		touch *spec
		edit  func(m map[*spec][]state.Endpoint)
	}{
		{"endpoint replaced", a, func(m map[*spec][]state.Endpoint) {
			m[a] = []state.Endpoint{ep("10.244.1.2", 8080), ep("10.244.1.9", 8080)}
		}},
		{"service added", d, func(m map[*spec][]state.Endpoint) { m[d] = []state.Endpoint{ep("10.244.4.2", 80)} }},
		{"service deleted", b, func(m map[*spec][]state.Endpoint) { delete(m, b) }},
		{"last endpoint gone", c, func(m map[*spec][]state.Endpoint) { m[c] = nil }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			k := fakenft.New()
			p := fakeProxier(t, k)
			if !syncOn(t, p, snapshotOf(before)) {
				t.Fatal("first sync must be full")
			}
			after := map[*spec][]state.Endpoint{}
			for s, eps := range before {
				after[s] = eps
			}
			st.edit(after)
			n := len(k.Batches())
			if syncOn(t, p, snapshotOf(after), st.touch.portName()) {
				t.Fatal("want a partial sync")
			}
			batches := k.Batches()[n:]
			if len(batches) == 0 {
				t.Fatal("the partial sync sent nothing")
			}
			for _, other := range []*spec{a, b, c, d} {
				if other == st.touch {
					continue
				}
				base := newPortNames(other.portName()).base
				for _, bt := range batches {
					for _, op := range bt.Ops {
						if strings.Contains(op, base) {
							t.Errorf("partial transaction touches unchanged %s: %s", other.name, op)
						}
					}
				}
			}
			fresh := fakenft.New()
			syncOn(t, fakeProxier(t, fresh), snapshotOf(after))
			for i, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
				got := withoutStale(t, k.Dump(fam, tableName), p.tables[i])
				if want := fresh.Dump(fam, tableName); got != strings.TrimSuffix(want, "\n") && got != want {
					t.Fatalf("family %d after the partial sync:\n%s\nfresh full sync:\n%s", fam, got, want)
				}
			}
		})
	}
}

// TestFailedTransactionForcesFullSync makes the fake kernel refuse one transaction:
// the table stays as it was, and the next sync is full and converges.
func TestFailedTransactionForcesFullSync(t *testing.T) {
	a := &spec{name: "a", clusterIP: "10.96.0.10", port: 80}
	k := fakenft.New()
	p := fakeProxier(t, k)
	syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{a: {ep("10.244.1.2", 8080)}}))
	before := k.Dump(nftables.TableFamilyIPv4, tableName)
	k.FailNextFlush(errRefused)
	next := snapshotOf(map[*spec][]state.Endpoint{a: {ep("10.244.1.3", 8080)}})
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{a.portName(): {}}}
	if _, err := p.Sync(context.Background(), next, cs); err == nil {
		t.Fatal("want the refused transaction's error")
	}
	if got := k.Dump(nftables.TableFamilyIPv4, tableName); got != before {
		t.Fatalf("a refused transaction changed the table:\n%s", got)
	}
	if !syncOn(t, p, next) {
		t.Fatal("after a failure the next sync must be full")
	}
	fresh := fakenft.New()
	syncOn(t, fakeProxier(t, fresh), next)
	if got, want := k.Dump(nftables.TableFamilyIPv4, tableName), fresh.Dump(nftables.TableFamilyIPv4, tableName); got != want {
		t.Fatalf("after the retry:\n%s\nwant:\n%s", got, want)
	}
}

var errRefused = &fakenft.OpError{Op: "test", Err: context.Canceled}

// TestCleanupDeletesTheFakeTables checks that Cleanup goes through the same seam.
func TestCleanupDeletesTheFakeTables(t *testing.T) {
	a := &spec{name: "a", clusterIP: "10.96.0.10", port: 80}
	k := fakenft.New()
	p := fakeProxier(t, k)
	syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{a: {ep("10.244.1.2", 8080)}}))
	if k.Dump(nftables.TableFamilyIPv4, tableName) == "" || k.Dump(nftables.TableFamilyIPv6, tableName) == "" {
		t.Fatal("the sync created no tables")
	}
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.Dump(nftables.TableFamilyIPv4, tableName) != "" || k.Dump(nftables.TableFamilyIPv6, tableName) != "" {
		t.Fatal("Cleanup left a table in the fake kernel")
	}
	// Cleaning up nothing succeeds.
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
}
