package iptables

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// largeServiceSizes are the endpoint counts of one Service in the large-Service
// benchmarks (issue 16): the render must grow linearly with them.
var largeServiceSizes = []int{1000, 10000, 30000}

// largeService is one ClusterIP Service with e ready endpoints, with distinct
// addresses in 10.244.0.0/16.
func largeService(e int) *svc {
	s := newSvc("bench", "large", "http", tcp, "10.96.0.1", 80)
	for k := 1; k <= e; k++ {
		s.ep(endpointAddr(k), true, false)
	}
	return s
}

func endpointAddr(k int) string {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(k >> 8), byte(k)}), 8080).String()
}

// TestRenderLargeServiceChains checks the indexed chain and endpoint lookups of a
// Service with many endpoints (past the short scan; state deduplicates endpoints): every endpoint gets exactly one
// KUBE-SEP chain that DNATs to it, and KUBE-SVC jumps to each once, in order.
func TestRenderLargeServiceChains(t *testing.T) {
	const n = 300
	s := largeService(n)
	r := Render(snapshot(s), testRenderConfig())
	sr := r.Services[s.sp.Name]
	chains := map[string][]string{}
	for _, c := range sr.Chains {
		if _, dup := chains[c.Name]; dup {
			t.Fatalf("chain %s rendered twice", c.Name)
		}
		chains[c.Name] = c.Rules
	}
	if len(chains) != n+1 {
		t.Fatalf("%d chains, want %d KUBE-SEP and one KUBE-SVC", len(chains), n+1)
	}
	svcRules := chains[chainsIn(&arena{}, portString(s.sp.Name), "tcp").svc]
	var jumps []string
	for _, r := range svcRules {
		if strings.Contains(r, " -> ") {
			jumps = append(jumps, r)
		}
	}
	if len(jumps) != n {
		t.Fatalf("KUBE-SVC has %d endpoint rules, want %d", len(jumps), n)
	}
	for k := 1; k <= n; k++ {
		addr := endpointAddr(k)
		j := jumps[k-1]
		if !strings.Contains(j, " -> "+addr+"\"") {
			t.Fatalf("KUBE-SVC rule %d is %q, want the jump to %s", k, j, addr)
		}
		sep := j[strings.LastIndex(j, " ")+1:]
		rules, ok := chains[sep]
		if !ok || len(rules) != 2 || !strings.HasSuffix(rules[1], "--to-destination "+addr) {
			t.Fatalf("chain %s of %s = %q, want masquerade and DNAT to it", sep, addr, rules)
		}
	}
}

// TestRenderKeepsEndpointCommentsOnLargeNodes pins a deliberate difference
// (docs/compatibility.md): kube-proxy's large-cluster mode drops the per-endpoint
// comments once the node has more than 1,000 endpoints; kproxy keeps them (kproxy
// trace and iptables-save readers label rules by them). 300 Services x 4 local
// endpoints is 1,200 endpoints: every choice rule still names its endpoint and
// every KUBE-SEP rule its Service.
func TestRenderKeepsEndpointCommentsOnLargeNodes(t *testing.T) {
	var svcs []*svc
	for i := range 300 {
		ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String()
		s := newSvc("bench", "svc-"+strconv.Itoa(i), "http", tcp, ip, 80)
		for k := 1; k <= 4; k++ {
			s.ep(endpointAddr(4*i+k), true, true)
		}
		svcs = append(svcs, s)
	}
	r := Render(snapshot(svcs...), testRenderConfig())
	choices, seps := 0, 0
	for _, s := range svcs {
		name := portString(s.sp.Name)
		for _, c := range r.Services[s.sp.Name].Chains {
			for _, rule := range c.Rules {
				switch {
				case strings.HasPrefix(c.Name, prefixSep):
					seps++
					if !strings.Contains(rule, `-m comment --comment "`+name+`"`) {
						t.Fatalf("%s rule %q lacks the comment %q", c.Name, rule, name)
					}
				case strings.Contains(rule, "-j "+prefixSep):
					choices++
					if !strings.Contains(rule, `-m comment --comment "`+name+` -> `) {
						t.Fatalf("%s rule %q lacks the comment naming its endpoint", c.Name, rule)
					}
				}
			}
		}
	}
	if choices != 1200 || seps != 2400 {
		t.Fatalf("%d choice rules and %d KUBE-SEP rules, want 1200 and 2400", choices, seps)
	}
}
