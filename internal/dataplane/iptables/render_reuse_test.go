package iptables

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// sharedChains counts the chains of cur whose rules are the very slice of old's
// chain of the same name (taken from the previous render, not rendered again).
func sharedChains(old, cur *ServiceRules) int {
	byName := map[string][]string{}
	for _, c := range old.Chains {
		byName[c.Name] = c.Rules
	}
	n := 0
	for _, c := range cur.Chains {
		if o, ok := byName[c.Name]; ok && len(o) > 0 && unsafe.SliceData(o) == unsafe.SliceData(c.Rules) {
			n++
		}
	}
	return n
}

// TestRenderAfterEqualsFreshRender re-renders a bucketed Service from its
// previous render through a series of endpoint changes: every result must equal
// a fresh render of the same snapshot, chain for chain and rule for rule, and the
// chains of the endpoints and buckets a change does not touch must come from the
// previous render. A change of session affinity (which every KUBE-SEP chain
// depends on) reuses nothing.
func TestRenderAfterEqualsFreshRender(t *testing.T) {
	withBucketAbove(t, 100)
	const n = 300
	cfg := testRenderConfig()
	steps := []struct {
		name string
		edit func(s *svc)
		// fresh is the most chains the render may render again (the policy
		// chain, the new endpoints' chains, the buckets they leave or join);
		// -1: all of them.
		fresh int
	}{
		{"one moved", func(s *svc) { s.eps[150].IP = netip.MustParseAddr("10.245.0.1") }, 1 + 1 + 2},
		{"five removed", func(s *svc) { s.eps = slices.Delete(s.eps, 10, 15) }, 1 + 5},
		{"twenty added", func(s *svc) {
			for k := range 20 {
				s.ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 246, 0, byte(k + 1)}), 8080).String(), true, false)
			}
		}, 1 + 20 + 20},
		{"one not ready", func(s *svc) { s.eps[7].Ready, s.eps[7].Serving = false, false }, 1 + 1},
		{"affinity on", func(s *svc) { s.sp.AffinityTimeout = 300 * time.Second }, -1},
		{"one moved with affinity", func(s *svc) { s.eps[20].IP = netip.MustParseAddr("10.245.0.2") }, 1 + 1 + 2},
	}
	s := largeService(n)
	prev := Render(snapshot(s), cfg).Services[s.sp.Name]
	for _, st := range steps {
		// Each step edits a copy: the previous render's snapshot stays as it was.
		next := &svc{sp: new(state.ServicePort), eps: slices.Clone(s.eps)}
		*next.sp = *s.sp
		st.edit(next)
		s = next
		snap := snapshot(s)
		got := newRenderCtx(cfg).serviceAfter(dataplane.NewRequest(snap), s.sp.Name, prev)
		want := Render(snap, cfg).Services[s.sp.Name]
		if !reflect.DeepEqual(got.Chains, want.Chains) || !reflect.DeepEqual(got.Dispatch, want.Dispatch) {
			t.Fatalf("%s: the render from the previous one differs from a fresh render", st.name)
		}
		shared := sharedChains(prev, got)
		t.Logf("%s: %d of %d chains taken from the previous render", st.name, shared, len(got.Chains))
		if st.fresh < 0 && shared != 0 {
			t.Errorf("%s: %d chains taken from the previous render, want none", st.name, shared)
		}
		if st.fresh >= 0 && len(got.Chains)-shared > st.fresh {
			t.Errorf("%s: %d of %d chains rendered again, want at most %d",
				st.name, len(got.Chains)-shared, len(got.Chains), st.fresh)
		}
		prev = got
	}
}

// TestPartialSyncAfterReuseMatchesFreshSync drives the same kind of changes as
// partial syncs through the stateful fake iptables: after each, the tables are
// exactly what a fresh full sync writes.
func TestPartialSyncAfterReuseMatchesFreshSync(t *testing.T) {
	withBucketAbove(t, 100)
	const n = 300
	s := largeService(n)
	f := fakeipt.New()
	p := newTestProxier(f)
	ctx := context.Background()
	if _, err := p.Sync(ctx, snapshot(s), changes()); err != nil {
		t.Fatal(err)
	}
	edits := []func(s *svc){
		func(s *svc) { s.eps[150].IP = netip.MustParseAddr("10.245.0.1") },
		func(s *svc) { s.eps = slices.Delete(s.eps, 40, 49) },
		func(s *svc) { s.ep("10.246.0.1:8080", true, false).ep("10.246.0.2:8080", true, false) },
		func(s *svc) { s.eps = s.eps[:90] }, // below the threshold: the flat layout
		func(s *svc) { s.eps = largeService(n).eps },
	}
	partialSyncsMatchFresh(t, p, f, s, edits, nil)
}

// partialSyncsMatchFresh applies each edit to s in turn as a partial sync of p
// (whose fake kernel is f) and fails unless each leaves exactly the tables a
// fresh full sync of the same Service writes; check, if not nil, then looks at
// the tables after step i.
func partialSyncsMatchFresh(t *testing.T, p coreProxier, f *fakeipt.Runner, s *svc, edits []func(*svc), check func(i int, s *svc)) {
	t.Helper()
	ctx := context.Background()
	for i, edit := range edits {
		next := &svc{sp: s.sp, eps: slices.Clone(s.eps)}
		edit(next)
		s = next
		if st, err := p.Sync(ctx, snapshot(s), changes(s.sp.Name)); err != nil || st.Full {
			t.Fatalf("step %d: partial sync: %+v %v", i, st, err)
		}
		fresh := fakeipt.New()
		if _, err := newTestProxier(fresh).Sync(ctx, snapshot(s), changes()); err != nil {
			t.Fatal(err)
		}
		if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
			t.Fatalf("step %d: after the partial sync the tables differ from a fresh full sync", i)
		}
		if check != nil {
			check(i, s)
		}
	}
}

// TestSepCacheStaysBounded replaces every endpoint of a bucketed Service several
// times over: the names kept across renders are pruned to about the endpoints
// in use, and each render still equals a fresh one.
func TestSepCacheStaysBounded(t *testing.T) {
	withBucketAbove(t, 100)
	const n = 200
	cfg := testRenderConfig()
	s := largeService(n)
	prev := Render(snapshot(s), cfg).Services[s.sp.Name]
	for round := 1; round <= 4; round++ {
		next := &svc{sp: s.sp}
		for k := range n {
			next.ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(240 + round), byte(k >> 8), byte(k)}), 8080).String(), true, false)
		}
		s = next
		snap := snapshot(s)
		got := newRenderCtx(cfg).serviceAfter(dataplane.NewRequest(snap), s.sp.Name, prev)
		want := Render(snap, cfg).Services[s.sp.Name]
		if !reflect.DeepEqual(got.Chains, want.Chains) {
			t.Fatalf("round %d: the render from the previous one differs from a fresh render", round)
		}
		if size := len(got.reuse.names.at); size > 2*n+64 {
			t.Fatalf("round %d: %d endpoint names kept for %d endpoints", round, size, n)
		}
		prev = got
	}
}
