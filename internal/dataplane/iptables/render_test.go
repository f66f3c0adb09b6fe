package iptables

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/golden"
)

const (
	tcp = v1.ProtocolTCP
	udp = v1.ProtocolUDP
)

// goldenCases are one Service feature each; the golden file is the full restore
// input for empty tables, the most readable form of the layout.
var goldenCases = []struct {
	name string
	cfg  func(*RenderConfig)
	svc  *svc
}{
	{name: "clusterip", svc: newSvc("ns", "web", "http", tcp, "10.96.0.10", 80).
		ep("10.244.1.2:8080", true, false).ep("10.244.2.2:8080", true, false).ep("10.244.3.2:8080", true, true)},
	{name: "udp", svc: newSvc("kube-system", "dns", "dns", udp, "10.96.0.53", 53).ep("10.244.1.5:5353", true, false)},
	{name: "no-endpoints", svc: newSvc("ns", "empty", "", tcp, "10.96.0.11", 80).
		with(func(sp *state.ServicePort) {
			sp.NodePort = 30011
			sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("192.0.2.11")}
		})},
	{name: "nodeport", svc: newSvc("ns", "np", "http", tcp, "10.96.0.12", 80).ep("10.244.1.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30012 })},
	{name: "nodeport-addresses", cfg: func(c *RenderConfig) {
		c.NodePortAddresses = []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.2.1")}
	}, svc: newSvc("ns", "np", "http", tcp, "10.96.0.12", 80).ep("10.244.1.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30012 })},
	{name: "localhost-nodeports", cfg: func(c *RenderConfig) { c.BlockLocalnet = true },
		svc: newSvc("ns", "np", "http", tcp, "10.96.0.12", 80).ep("10.244.1.2:8080", true, false).
			with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30012 })},
	{name: "externalip", svc: newSvc("ns", "ext", "http", tcp, "10.96.0.13", 80).ep("10.244.1.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("192.0.2.13")} })},
	{name: "loadbalancer-source-ranges", svc: newSvc("ns", "lb", "https", tcp, "10.96.0.14", 443).ep("10.244.1.2:8443", true, false).
		with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeLoadBalancer
			sp.NodePort = 30014
			sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("203.0.113.14")}
			sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		})},
	{name: "external-policy-local", svc: newSvc("ns", "etp", "http", tcp, "10.96.0.15", 80).
		ep("10.244.1.2:8080", true, true).ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeLoadBalancer
			sp.NodePort = 30015
			sp.HealthCheckNodePort = 32015
			sp.ExternalPolicyLocal = true
			sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("203.0.113.15")}
		})},
	{name: "external-policy-local-no-local-endpoints", svc: newSvc("ns", "etp", "http", tcp, "10.96.0.15", 80).
		ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.NodePort = 30015; sp.ExternalPolicyLocal = true })},
	{name: "internal-policy-local", svc: newSvc("ns", "itp", "http", tcp, "10.96.0.16", 80).
		ep("10.244.1.2:8080", true, true).ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })},
	{name: "internal-policy-local-no-local-endpoints", svc: newSvc("ns", "itp", "http", tcp, "10.96.0.16", 80).
		ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })},
	{name: "affinity", svc: newSvc("ns", "sticky", "http", tcp, "10.96.0.17", 80).
		ep("10.244.1.2:8080", true, false).ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.AffinityTimeout = 600 * time.Second })},
	{name: "masquerade-all", cfg: func(c *RenderConfig) { c.MasqueradeAll = true; c.ClusterCIDRs = nil },
		svc: newSvc("ns", "web", "http", tcp, "10.96.0.10", 80).ep("10.244.1.2:8080", true, false)},
	{name: "terminating-fallback", svc: newSvc("ns", "term", "http", tcp, "10.96.0.18", 80).
		terminating("10.244.1.2:8080", false).ep("10.244.2.2:8080", false, false)},
}

func TestRenderGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testRenderConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			checkGolden(t, c.name, string(FullText(Render(snapshot(c.svc), cfg))))
		})
	}
}

// checkGolden compares a rendering with testdata/NAME.golden (-update rewrites it).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name+".golden", []byte(got))
}

func TestProbabilitiesSpreadEvenly(t *testing.T) {
	s := newSvc("ns", "web", "", tcp, "10.96.0.10", 80)
	for _, a := range []string{"10.244.1.2:80", "10.244.1.3:80", "10.244.1.4:80", "10.244.1.5:80"} {
		s.ep(a, true, false)
	}
	r := Render(snapshot(s), testRenderConfig())
	var svcRules []string
	for _, c := range r.Services[s.sp.Name].Chains {
		if strings.HasPrefix(c.Name, prefixSvc) {
			svcRules = c.Rules
		}
	}
	want := []string{"0.2500000000", "0.3333333333", "0.5000000000", ""}
	var got []string
	for _, rule := range svcRules {
		if !strings.Contains(rule, "KUBE-SEP-") {
			continue
		}
		_, p, _ := strings.Cut(rule, "--probability ")
		p, _, _ = strings.Cut(p, " ")
		got = append(got, p)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("probabilities %v, want %v (last endpoint unconditional)", got, want)
	}
}

func TestChainNamesFitIPTablesLimit(t *testing.T) {
	n := state.ServicePortName{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 63), Port: "p", Protocol: tcp}
	c := chainsFor(n)
	for _, name := range []string{c.svc, c.svl, c.ext, c.fw, endpointChain(n, "10.0.0.1:80")} {
		if len(name) > 28 {
			t.Errorf("%s is %d characters, limit 28", name, len(name))
		}
	}
	if c.svc == chainsFor(state.ServicePortName{Namespace: "ns", Name: "x", Protocol: udp}).svc {
		t.Error("different ports hash to the same chain")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	var svcs []*svc
	for _, c := range goldenCases {
		svcs = append(svcs, c.svc)
	}
	snap := snapshot(svcs...)
	a := string(FullText(Render(snap, testRenderConfig())))
	b := string(FullText(Render(snap, testRenderConfig())))
	if a != b {
		t.Fatal("two renders of one snapshot differ")
	}
}

func TestCommentsQuotedLikeIPTablesSave(t *testing.T) {
	cases := map[string]string{
		"kube-system_dns": "kube-system_dns",
		"ns/web:http":     `"ns/web:http"`,
		`say "hi"`:        `"say \"hi\""`,
		"":                `""`,
	}
	for in, want := range cases {
		if got := string(appendSaveString(nil, in)); got != want {
			t.Errorf("%q: got %s, want %s", in, got, want)
		}
	}
}

func TestNormalizeProbabilityMatchesSaveOutput(t *testing.T) {
	written := "-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-X"
	saved := "-m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-X"
	if !sameRules([]string{saved}, []string{written}) {
		t.Fatalf("%q and %q are the same rule in the kernel", written, saved)
	}
	if sameRules([]string{saved}, []string{"-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-X"}) {
		t.Fatal("different probabilities compare equal")
	}
}

// TestChainNamesMatchKubeProxy pins names from kube-proxy's own iptables tests, so
// that either program finds (and cleans up) the other's chains.
func TestChainNamesMatchKubeProxy(t *testing.T) {
	n := state.ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: tcp}
	if got := chainsFor(n).svc; got != "KUBE-SVC-XPGD46QRK7WJZT7O" {
		t.Errorf("service chain %s, kube-proxy names it KUBE-SVC-XPGD46QRK7WJZT7O", got)
	}
	if got := endpointChain(n, "10.180.0.1:80"); got != "KUBE-SEP-SXIVWICOYRO3J4NJ" {
		t.Errorf("endpoint chain %s, kube-proxy names it KUBE-SEP-SXIVWICOYRO3J4NJ", got)
	}
}
