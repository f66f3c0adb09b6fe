package iptables

import (
	"context"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
	"kproxy.dev/kproxy/internal/trace"
)

// withFoldAbove lowers the node-wide fold threshold for one test.
func withFoldAbove(t testing.TB, n int) {
	old := foldAbove
	foldAbove = n
	t.Cleanup(func() { foldAbove = old })
}

// on adds a ready endpoint running on node (the test snapshot's node is
// "node-a"; "" is an endpoint whose node is unknown).
func (s *svc) on(addr, node string) *svc {
	s.ep(addr, true, node == "node-a")
	s.eps[len(s.eps)-1].NodeName = node
	return s
}

// remoteLargeService is largeService with every endpoint on another node.
func remoteLargeService(e int) *svc {
	s := largeService(e)
	for i := range s.eps {
		s.eps[i].NodeName = "node-b"
	}
	return s
}

func withFold(c *RenderConfig) { c.FoldRemote = true }

// sepChains lists the KUBE-SEP chains of a rendered Service.
func sepChains(sr *ServiceRules) []string {
	var out []string
	for _, c := range sr.Chains {
		if strings.HasPrefix(c.Name, prefixSep) {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

// TestRenderGoldenFolded pins the folded layout: remote endpoints as DNAT rules
// in KUBE-SVC, the local one and the one of an unknown node with their
// KUBE-SEP chains; and the same inside bucket chains (threshold lowered to 4,
// node-wide folding off).
func TestRenderGoldenFolded(t *testing.T) {
	web := newSvc("ns", "web", "http", tcp, "10.96.0.10", 80).
		on("10.244.1.2:8080", "node-b").on("10.244.2.2:8080", "node-a").on("10.244.3.2:8080", "").on("10.244.4.2:8080", "node-c")
	cfg := testRenderConfig()
	withFold(&cfg)
	checkGolden(t, "folded", string(FullText(Render(snapshot(web), cfg))))

	withBucketAbove(t, 4)
	big := newSvc("ns", "web", "http", tcp, "10.96.0.10", 80)
	for k := 1; k <= 6; k++ {
		node := "node-b"
		if k == 3 {
			node = "node-a"
		}
		big.on(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(k), 2}), 8080).String(), node)
	}
	checkGolden(t, "folded-buckets", string(FullText(Render(snapshot(big), testRenderConfig()))))
}

// TestFoldKeepsSepChainsWhereNeeded: which endpoints keep a KUBE-SEP chain.
func TestFoldKeepsSepChainsWhereNeeded(t *testing.T) {
	mixed := func() *svc {
		return newSvc("ns", "web", "http", tcp, "10.96.0.10", 80).
			on("10.244.1.2:8080", "node-b").on("10.244.2.2:8080", "node-a").on("10.244.3.2:8080", "")
	}
	sep := func(ep string) string { return endpointChain(mixed().sp.Name, ep) }
	all := []string{sep("10.244.1.2:8080"), sep("10.244.2.2:8080"), sep("10.244.3.2:8080")}
	etpLocal := func(sp *state.ServicePort) {
		sp.Type = v1.ServiceTypeNodePort
		sp.NodePort = 30010
		sp.ExternalPolicyLocal = true
	}
	cases := []struct {
		name string
		cfg  func(*RenderConfig)
		svc  *svc
		want []string
	}{
		{"node below the threshold: kube-proxy's layout", nil, mixed(), all},
		{"folded: local and unknown node keep theirs", withFold, mixed(), []string{sep("10.244.2.2:8080"), sep("10.244.3.2:8080")}},
		{"ClientIP affinity keeps all", withFold, mixed().with(func(sp *state.ServicePort) { sp.AffinityTimeout = 100 * time.Second }), all},
		{"eTP Local with a pod CIDR keeps all", withFold, mixed().with(etpLocal), all},
		{"eTP Local without a pod CIDR folds", func(c *RenderConfig) { withFold(c); c.ClusterCIDRs = nil; c.MasqueradeAll = true },
			mixed().with(etpLocal), []string{sep("10.244.2.2:8080"), sep("10.244.3.2:8080")}},
		{"iTP Local folds the cluster chain only", withFold, mixed().with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeNodePort
			sp.NodePort = 30010
			sp.InternalPolicyLocal = true
		}), []string{sep("10.244.2.2:8080"), sep("10.244.3.2:8080")}},
		{"serving-terminating fallback folds", withFold, newSvc("ns", "web", "http", tcp, "10.96.0.10", 80).
			terminatingOn("10.244.9.2:8080", "node-b").terminatingOn("10.244.9.3:8080", "node-c"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testRenderConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			sr := Render(snapshot(c.svc), cfg).Services[c.svc.sp.Name]
			want := slices.Sorted(slices.Values(c.want))
			if got := sepChains(sr); !slices.Equal(got, want) {
				t.Fatalf("KUBE-SEP chains %v, want %v:\n%s", got, want, FullText(Render(snapshot(c.svc), cfg)))
			}
			// Every endpoint is still reached with probability 1/n.
			top := chainsFor(c.svc.sp.Name).svc
			if _, ok := chainMap(sr)[top]; !ok {
				return
			}
			shares, fell, _ := endpointShares(t, chainMap(sr), top)
			if fell > 1e-12 {
				t.Fatalf("%g falls through %s", fell, top)
			}
			for target, p := range shares {
				if math.Abs(p*float64(len(shares))-1) > 1e-5 {
					t.Errorf("%s chosen with probability %g, want 1/%d", target, p, len(shares))
				}
			}
		})
	}
}

// terminatingOn adds a serving, terminating endpoint on another node.
func (s *svc) terminatingOn(addr, node string) *svc {
	s.terminating(addr, false)
	s.eps[len(s.eps)-1].NodeName = node
	return s
}

// TestFoldedLayoutThroughTrace: kproxy trace follows folded DNAT rules as the
// kernel does and finds every endpoint with probability 1/n, flat (node-wide
// folding) and in bucket chains, and a pod calling its own Service (the local
// endpoint) through its KUBE-SEP chain's hairpin masquerade.
func TestFoldedLayoutThroughTrace(t *testing.T) {
	withBucketAbove(t, 8)
	for _, c := range []struct {
		name string
		n    int
		fold bool
	}{{"flat", 6, true}, {"buckets", 30, false}} {
		t.Run(c.name, func(t *testing.T) {
			s := remoteLargeService(c.n)
			s.eps[2].NodeName, s.eps[2].IsLocal = "node-a", true
			cfg := testRenderConfig()
			cfg.FoldRemote = c.fold
			rendered := Render(snapshot(s), cfg)
			if got := sepChains(rendered.Services[s.sp.Name]); len(got) != 1 {
				t.Fatalf("KUBE-SEP chains %v, want only the local endpoint's", got)
			}
			dump := string(FullText(rendered))
			opts := trace.Options{LocalAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.1")}, LocalKnown: true}
			res, err := trace.TraceIptables(dump, trace.Packet{Src: netip.MustParseAddr("10.244.200.1"), Dst: netip.MustParseAddr("10.96.0.1"),
				DPort: 80, Proto: "tcp", InInterface: "cni0"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, cand := range res.Candidates {
				if cand.Verdict != "dnat" {
					t.Fatalf("candidate %+v, want only DNATs", cand)
				}
				got[cand.Endpoint] += cand.Probability
			}
			if len(got) != c.n {
				t.Fatalf("trace finds %d endpoints, want %d: %v", len(got), c.n, got)
			}
			for e, p := range got {
				if math.Abs(p*float64(c.n)-1) > 1e-5 {
					t.Errorf("trace: %s with probability %g, want 1/%d", e, p, c.n)
				}
			}
			local := s.eps[2]
			res, err = trace.TraceIptables(dump, trace.Packet{Src: local.IP, Dst: netip.MustParseAddr("10.96.0.1"),
				DPort: 80, Proto: "tcp", InInterface: "cni0"}, opts)
			if err != nil {
				t.Fatal(err)
			}
			hairpin := false
			for _, cand := range res.Candidates {
				if cand.Endpoint == local.String() {
					hairpin = true
					if !cand.Masquerade {
						t.Fatalf("the local endpoint reaching itself is not masqueraded: %+v", cand)
					}
				}
			}
			if !hairpin {
				t.Fatalf("the local endpoint never reaches itself: %+v", res.Candidates)
			}
		})
	}
}

// TestFoldThresholdCrossing drives a node across the (lowered) node-wide
// threshold and back with partial syncs on the stateful fake: crossing it
// becomes a full sync whose one restore rewrites the Service chains and removes
// the KUBE-SEP chains no longer wanted (or brings them back), and the tables
// then are exactly what a fresh full sync writes. Between 7/8 of the threshold
// and the threshold the layout stays as it is.
func TestFoldThresholdCrossing(t *testing.T) {
	withFoldAbove(t, 8)
	a := newSvc("ns", "a", "http", tcp, "10.96.0.1", 80).on("10.244.1.2:80", "node-b").on("10.244.1.3:80", "node-c").on("10.244.1.4:80", "node-b")
	b := newSvc("ns", "b", "dns", udp, "10.96.0.2", 53).on("10.244.2.2:53", "node-b").on("10.244.2.3:53", "node-a").on("10.244.2.4:53", "node-c")
	c3 := newSvc("ns", "c", "http", tcp, "10.96.0.3", 80).on("10.244.3.2:80", "node-b").on("10.244.3.3:80", "node-c").on("10.244.3.4:80", "node-d")
	c2 := newSvc("ns", "c", "http", tcp, "10.96.0.3", 80).on("10.244.3.2:80", "node-b").on("10.244.3.3:80", "node-c")
	c0 := newSvc("ns", "c", "http", tcp, "10.96.0.3", 80)
	f := fakeipt.New()
	p := newTestProxier(f)
	ctx := context.Background()
	seps := func() int {
		n := 0
		for _, ch := range f.Chains("nat") {
			if strings.HasPrefix(ch, prefixSep) {
				n++
			}
		}
		return n
	}
	if _, err := p.Sync(ctx, snapshot(a, b, c0), changes()); err != nil {
		t.Fatal(err)
	}
	if n := seps(); n != 6 {
		t.Fatalf("6 endpoints below the threshold: %d KUBE-SEP chains, want 6", n)
	}
	steps := []struct {
		name       string
		c          *svc
		full       bool
		seps       int
		freshEqual bool
	}{
		{"9 endpoints: folds", c3, true, 1, true},
		{"8 endpoints (not above 8, not below 7/8 of it): stays folded", c2, false, 1, false},
		{"9 endpoints again: a partial sync in the folded layout", c3, false, 1, true},
		{"6 endpoints: unfolds", c0, true, 6, true},
	}
	for _, st := range steps {
		restores := len(f.Restores())
		stats, err := p.Sync(ctx, snapshot(a, b, st.c), changes(c0.sp.Name))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if stats.Full != st.full {
			t.Fatalf("%s: full sync %v, want %v", st.name, stats.Full, st.full)
		}
		if n := seps(); n != st.seps {
			t.Fatalf("%s: %d KUBE-SEP chains, want %d:\n%s", st.name, n, st.seps, f.Dump())
		}
		if st.full {
			// One restore (one transaction per table) switches the layout: no
			// state in between where a Service jumps to a removed chain.
			if got := len(f.Restores()) - restores; got != 1 {
				t.Fatalf("%s: %d restores, want 1", st.name, got)
			}
		}
		if !st.freshEqual {
			continue
		}
		fresh := fakeipt.New()
		if _, err := newTestProxier(fresh).Sync(ctx, snapshot(a, b, st.c), changes()); err != nil {
			t.Fatal(err)
		}
		if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
			t.Fatalf("%s: the tables differ from a fresh full sync:\n%s\nwant:\n%s", st.name, got, want)
		}
	}
}

// TestPartialSyncFoldedBucketsMatchesFreshSync changes a bucketed Service whose
// endpoints are on other nodes (folded into the bucket chains, their renders
// reused across partial syncs) and checks each partial sync leaves exactly what
// a fresh full sync writes, including a node becoming known for an endpoint
// that had none (the same address: its rule changes from a jump to a DNAT).
func TestPartialSyncFoldedBucketsMatchesFreshSync(t *testing.T) {
	withBucketAbove(t, 100)
	const n = 300
	s := remoteLargeService(n)
	s.eps[10].NodeName = ""
	f := fakeipt.New()
	p := newTestProxier(f)
	ctx := context.Background()
	if _, err := p.Sync(ctx, snapshot(s), changes()); err != nil {
		t.Fatal(err)
	}
	edits := []func(s *svc){
		func(s *svc) { s.eps[150].IP = netip.MustParseAddr("10.245.0.1") },
		func(s *svc) { s.eps = slices.Delete(s.eps, 40, 49) },
		func(s *svc) { s.on("10.246.0.1:8080", "node-c").on("10.246.0.2:8080", "node-a") },
		func(s *svc) { s.eps[10].NodeName = "node-d" },
		func(s *svc) { s.eps = s.eps[:90] }, // below the threshold: kube-proxy's layout
		func(s *svc) { s.eps = remoteLargeService(n).eps },
	}
	partialSyncsMatchFresh(t, p, f, s, edits, func(i int, s *svc) {
		seps := 0
		for _, ch := range f.Chains("nat") {
			if strings.HasPrefix(ch, prefixSep) {
				seps++
			}
		}
		if wantFolded := len(s.eps) > 100; wantFolded && seps > 2 || !wantFolded && seps != len(s.eps) {
			t.Fatalf("step %d: %d KUBE-SEP chains for %d endpoints", i, seps, len(s.eps))
		}
	})
}
