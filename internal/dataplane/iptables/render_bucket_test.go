package iptables

import (
	"context"
	"math"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
	"kproxy.dev/kproxy/internal/trace"
)

// withBucketAbove lowers the bucket threshold for one test, so that small Services
// get the two-level layout.
func withBucketAbove(t testing.TB, n int) {
	old := bucketAbove
	bucketAbove = n
	t.Cleanup(func() { bucketAbove = old })
}

// chainMap indexes a Service's rendered chains by name.
func chainMap(sr *ServiceRules) map[string][]string {
	out := map[string][]string{}
	for _, c := range sr.Chains {
		out[c.Name] = c.Rules
	}
	return out
}

// endpointShares follows chain's rules as the kernel would for a new client: each
// jump is taken with its -m statistic probability (1 without) of the traffic that
// reached it, and the rest goes on to the next rule. It returns, per KUBE-SEP
// chain, the share of chain's traffic that reaches it, how much fell through the
// end, and the most endpoint-choice rules a packet walks.
func endpointShares(t *testing.T, chains map[string][]string, chain string) (map[string]float64, float64, int) {
	t.Helper()
	out := map[string]float64{}
	var walk func(chain string, share float64, depth int) (float64, int)
	walk = func(chain string, share float64, depth int) (float64, int) {
		if depth > 4 {
			t.Fatalf("chains nest deeper than 4 at %s", chain)
		}
		rules, ok := chains[chain]
		if !ok {
			t.Fatalf("jump to %s, which is not rendered", chain)
		}
		rest, walked, most := share, 0, 0
		for _, r := range rules {
			target := jumpTarget(r)
			if target == chainMarkMasq || strings.Contains(r, "--rcheck") {
				continue
			}
			walked++
			p := 1.0
			if _, after, ok := strings.Cut(r, "--probability "); ok {
				f, err := strconv.ParseFloat(strings.Fields(after)[0], 64)
				if err != nil {
					t.Fatalf("rule %q: %v", r, err)
				}
				p = f
			}
			if strings.HasPrefix(target, prefixSep) || strings.Contains(r, " -j DNAT ") {
				// A KUBE-SEP chain, or a folded endpoint's DNAT
				// (keyed by its address).
				out[target] += rest * p
				most = max(most, walked)
			} else {
				fell, inner := walk(target, rest*p, depth+1)
				if fell > 1e-12 {
					t.Fatalf("%s lets %g of its traffic fall through", target, fell)
				}
				most = max(most, walked+inner)
			}
			rest *= 1 - p
		}
		return rest, most
	}
	fell, most := walk(chain, 1, 0)
	return out, fell, most
}

// TestBucketProbabilitiesUniform renders Services above the bucket threshold
// (lowered, and the default one) and checks that every endpoint is reached with
// probability 1/n within the rounding of ten decimals, nothing falls through, and
// a new connection walks O(sqrt n) rules.
func TestBucketProbabilitiesUniform(t *testing.T) {
	cases := []struct{ above, n int }{{4, 5}, {4, 17}, {10, 100}, {100, 1001}, {1000, 1001}, {1000, 5000}}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.n)+"-above-"+strconv.Itoa(c.above), func(t *testing.T) {
			withBucketAbove(t, c.above)
			s := largeService(c.n)
			sr := Render(snapshot(s), testRenderConfig()).Services[s.sp.Name]
			chains := chainMap(sr)
			top := chainsFor(s.sp.Name).svc
			shares, fell, walked := endpointShares(t, chains, top)
			if fell > 1e-12 {
				t.Fatalf("%g of the traffic falls through %s", fell, top)
			}
			if len(shares) != c.n {
				t.Fatalf("%d endpoints reachable, want %d", len(shares), c.n)
			}
			for sep, p := range shares {
				if math.Abs(p*float64(c.n)-1) > 1e-5 {
					t.Errorf("%s is chosen with probability %g, want 1/%d = %g", sep, p, c.n, 1/float64(c.n))
				}
			}
			buckets := len(chains) - c.n - 1
			if buckets < 1 || buckets > bucketCount(c.n) {
				t.Fatalf("%d bucket chains, want 1 to %d", buckets, bucketCount(c.n))
			}
			if limit := 4 * int(math.Ceil(math.Sqrt(float64(c.n)))); walked > limit {
				t.Errorf("a new connection walks up to %d choice rules, want O(sqrt n) (at most %d)", walked, limit)
			}
		})
	}
}

// TestBucketThresholdKeepsKubeProxyLayout: at the threshold a Service keeps
// kube-proxy's flat chain (one rule per endpoint, no bucket chain); one endpoint
// more and KUBE-SVC jumps to buckets only.
func TestBucketThresholdKeepsKubeProxyLayout(t *testing.T) {
	withBucketAbove(t, 20)
	for _, n := range []int{20, 21} {
		s := largeService(n)
		sr := Render(snapshot(s), testRenderConfig()).Services[s.sp.Name]
		chains := chainMap(sr)
		top := chains[chainsFor(s.sp.Name).svc]
		seps, buckets := 0, 0
		for _, r := range top {
			switch target := jumpTarget(r); {
			case strings.HasPrefix(target, prefixSep):
				seps++
			case strings.HasPrefix(target, prefixSvc):
				buckets++
			}
		}
		switch {
		case n == 20 && (seps != 20 || buckets != 0 || len(chains) != 21):
			t.Errorf("n=20: %d endpoint and %d bucket jumps, %d chains; want kube-proxy's flat chain", seps, buckets, len(chains))
		case n == 21 && (seps != 0 || buckets == 0 || buckets > bucketCount(21)):
			t.Errorf("n=21: %d endpoint and %d bucket jumps; want only bucket jumps", seps, buckets)
		}
	}
}

// TestBucketChainNames: bucket chains are named like every kube-proxy chain
// (prefix and 16 hash characters, within 28), distinct per Service, policy chain
// and bucket, and the same in every render.
func TestBucketChainNames(t *testing.T) {
	rc := newRenderCtx(testRenderConfig())
	s := &svcRender{rc: rc}
	seen := map[string]bool{}
	for _, n := range []state.ServicePortName{{Namespace: "ns", Name: "a", Port: "http", Protocol: tcp}, {Namespace: "ns", Name: "b", Protocol: udp}} {
		ch := chainsFor(n)
		for _, policy := range []string{ch.svc, ch.svl} {
			for b := 0; b < 64; b++ {
				name := s.bucketChain(policy, b)
				if len(name) != len(prefixSvc)+16 || !strings.HasPrefix(name, policy[:len(prefixSvc)]) || !isServiceChain(name) {
					t.Fatalf("bucket %d of %s is named %q", b, policy, name)
				}
				if seen[name] {
					t.Fatalf("%s named twice", name)
				}
				seen[name] = true
				if again := s.bucketChain(policy, b); again != name {
					t.Fatalf("bucket %d of %s named %s, then %s", b, policy, name, again)
				}
			}
		}
	}
	// Pinned so that a change of the name pattern is deliberate.
	if got := s.bucketChain("KUBE-SVC-XPGD46QRK7WJZT7O", 3); got != hashName(prefixSvc, "KUBE-SVC-XPGD46QRK7WJZT7O/bucket/3") {
		t.Fatalf("bucket chain %s does not follow the documented pattern", got)
	}
}

// bucketChains lists the bucket chains of a rendered Service.
func bucketChains(sr *ServiceRules, top string) map[string]bool {
	out := map[string]bool{}
	for _, c := range sr.Chains {
		if c.Name != top && strings.HasPrefix(c.Name, prefixSvc) {
			out[c.Name] = true
		}
	}
	return out
}

// touchedChains lists the chains a restore input creates, empties, replaces
// rules of, or deletes.
func touchedChains(input string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(input, "\n") {
		switch {
		case strings.HasPrefix(l, ":"):
			out[strings.Fields(l[1:])[0]] = true
		case strings.HasPrefix(l, "-R "), strings.HasPrefix(l, "-X "), strings.HasPrefix(l, "-A "):
			out[strings.Fields(l)[1]] = true
		}
	}
	return out
}

// TestBucketOneEndpointChangeTouchesOneBucket removes, adds and moves one endpoint
// of a bucketed Service with partial syncs on the stateful fake: a removal or an
// addition rewrites exactly one bucket chain (a move at most two: the endpoint's
// old and new bucket) besides the top chain and the KUBE-SEP chains involved, and
// the tables end exactly as a fresh full sync writes them.
func TestBucketOneEndpointChangeTouchesOneBucket(t *testing.T) {
	withBucketAbove(t, 100)
	const n = 300
	base := largeService(n)
	top := chainsFor(base.sp.Name).svc
	removed := largeService(n)
	removed.eps = append(removed.eps[:150:150], removed.eps[151:]...)
	added := largeService(n).ep("10.245.0.1:8080", true, false)
	moved := largeService(n)
	moved.eps[150].IP = netip.MustParseAddr("10.245.0.1")
	for _, c := range []struct {
		name    string
		after   *svc
		buckets int
	}{{"remove", removed, 1}, {"add", added, 1}, {"move", moved, 2}} {
		t.Run(c.name, func(t *testing.T) {
			f := fakeipt.New()
			p := newTestProxier(f)
			ctx := context.Background()
			if _, err := p.Sync(ctx, snapshot(base), changes()); err != nil {
				t.Fatal(err)
			}
			st, err := p.Sync(ctx, snapshot(c.after), changes(base.sp.Name))
			if err != nil || st.Full {
				t.Fatalf("partial sync: %+v %v", st, err)
			}
			in := f.LastInput()
			all := bucketChains(Render(snapshot(base), testRenderConfig()).Services[base.sp.Name], top)
			var touched []string
			for name := range touchedChains(in) {
				if all[name] {
					touched = append(touched, name)
				}
			}
			if len(touched) < 1 || len(touched) > c.buckets {
				t.Fatalf("%d of %d bucket chains touched %v, want 1 to %d:\n%s", len(touched), len(all), touched, c.buckets, in)
			}
			fresh := fakeipt.New()
			if _, err := newTestProxier(fresh).Sync(ctx, snapshot(c.after), changes()); err != nil {
				t.Fatal(err)
			}
			if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
				t.Fatalf("after the partial sync the tables differ from a fresh full sync\n(partial input:\n%s)", in)
			}
		})
	}
}

// TestBucketLayoutThroughTrace: kproxy trace, which follows the rules as the kernel
// does, finds every endpoint of a bucketed Service with probability 1/n, for
// ClusterIP traffic, through KUBE-SVL under internalTrafficPolicy Local, and with
// ClientIP affinity (whose checks stay ahead of the buckets).
func TestBucketLayoutThroughTrace(t *testing.T) {
	withBucketAbove(t, 8)
	const n = 30
	plain := largeService(n)
	sticky := largeService(n).with(func(sp *state.ServicePort) { sp.AffinityTimeout = 600 * time.Second })
	local := largeService(n).with(func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })
	for i := range local.eps {
		local.eps[i].IsLocal = true
	}
	for name, s := range map[string]*svc{"cluster": plain, "affinity": sticky, "internal-local": local} {
		t.Run(name, func(t *testing.T) {
			dump := string(FullText(Render(snapshot(s), testRenderConfig())))
			res, err := trace.TraceIptables(dump, trace.Packet{Src: netip.MustParseAddr("10.244.200.1"), Dst: netip.MustParseAddr("10.96.0.1"),
				DPort: 80, Proto: "tcp", InInterface: "cni0"}, trace.Options{LocalAddrs: []netip.Addr{netip.MustParseAddr("192.168.1.1")}, LocalKnown: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, c := range res.Candidates {
				if c.Verdict != "dnat" {
					t.Fatalf("candidate %+v, want only DNATs", c)
				}
				got[c.Endpoint] += c.Probability
			}
			var eps []string
			for k := 1; k <= n; k++ {
				eps = append(eps, endpointAddr(k))
			}
			sort.Strings(eps)
			if len(got) != n {
				t.Fatalf("trace finds %d endpoints, want %d: %v", len(got), n, got)
			}
			for _, e := range eps {
				if p := got[e]; math.Abs(p*n-1) > 1e-5 {
					t.Errorf("trace: %s with probability %g, want 1/%d", e, p, n)
				}
			}
		})
	}
}

// TestRenderGoldenBuckets pins the two-level layout (threshold lowered to 4): six
// endpoints in bucketCount(6) = 4 buckets, plain and with ClientIP affinity.
func TestRenderGoldenBuckets(t *testing.T) {
	withBucketAbove(t, 4)
	web := func() *svc {
		s := newSvc("ns", "web", "http", tcp, "10.96.0.10", 80)
		for k := 1; k <= 6; k++ {
			s.ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(k), 2}), 8080).String(), true, false)
		}
		return s
	}
	checkGolden(t, "buckets", string(FullText(Render(snapshot(web()), testRenderConfig()))))
	sticky := web().with(func(sp *state.ServicePort) { sp.AffinityTimeout = 600 * time.Second })
	checkGolden(t, "buckets-affinity", string(FullText(Render(snapshot(sticky), testRenderConfig()))))
}

// TestBucketThresholdCrossingAndStaleChains grows a Service past the (lowered)
// threshold and shrinks it back with partial syncs on the stateful fake, then
// deletes it: after each step the tables are exactly what a fresh full sync
// writes, and no bucket chain outlives the Service. A restarted proxier's first
// (full) sync also removes the bucket chains of a Service that went away while it
// was down.
func TestBucketThresholdCrossingAndStaleChains(t *testing.T) {
	withBucketAbove(t, 10)
	other := newSvc("ns", "other", "http", tcp, "10.96.0.9", 80).ep("10.244.9.9:80", true, false)
	steps := []*svc{largeService(10), largeService(11), largeService(40), largeService(10)}
	f := fakeipt.New()
	p := newTestProxier(f)
	ctx := context.Background()
	if _, err := p.Sync(ctx, snapshot(steps[0], other), changes()); err != nil {
		t.Fatal(err)
	}
	name := steps[0].sp.Name
	for i, s := range steps[1:] {
		if st, err := p.Sync(ctx, snapshot(s, other), changes(name)); err != nil || st.Full {
			t.Fatalf("step %d: partial sync: %+v %v", i+1, st, err)
		}
		fresh := fakeipt.New()
		if _, err := newTestProxier(fresh).Sync(ctx, snapshot(s, other), changes()); err != nil {
			t.Fatal(err)
		}
		if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
			t.Fatalf("step %d (%d endpoints): tables differ from a fresh full sync\n(partial input:\n%s)", i+1, len(s.eps), f.LastInput())
		}
	}
	svcChains := func(r *fakeipt.Runner) []string {
		var out []string
		for _, c := range r.Chains("nat") {
			if strings.HasPrefix(c, prefixSvc) {
				out = append(out, c)
			}
		}
		return out
	}
	if _, err := p.Sync(ctx, snapshot(largeService(40), other), changes(name)); err != nil {
		t.Fatal(err)
	}
	if n := len(svcChains(f)); n < 3 {
		t.Fatalf("%d KUBE-SVC chains with 40 endpoints above a threshold of 10, want buckets", n)
	}
	if _, err := p.Sync(ctx, snapshot(other), changes(name)); err != nil {
		t.Fatal(err)
	}
	if got := svcChains(f); len(got) != 1 || got[0] != chainsFor(other.sp.Name).svc {
		t.Fatalf("after deleting the Service: KUBE-SVC chains %v, want only the other Service's", got)
	}

	restarted := fakeipt.New()
	if _, err := newTestProxier(restarted).Sync(ctx, snapshot(largeService(40), other), changes()); err != nil {
		t.Fatal(err)
	}
	if _, err := newTestProxier(restarted).Sync(ctx, snapshot(other), changes()); err != nil {
		t.Fatal(err)
	}
	if got := svcChains(restarted); len(got) != 1 || got[0] != chainsFor(other.sp.Name).svc {
		t.Fatalf("a restarted proxier left KUBE-SVC chains %v, want only the other Service's", got)
	}
}
