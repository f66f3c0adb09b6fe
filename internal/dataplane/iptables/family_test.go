package iptables

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

func ipv6RenderConfig() RenderConfig {
	return RenderConfig{MasqueradeBit: 14, IPv6: true, ClusterCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:244::/64")}}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// dualStackLB is a dual-stack LoadBalancer Service with every kind of address in
// both families, ready endpoints in both, and ClientIP affinity.
func dualStackLB() *svc {
	return newSvc("ns", "dual", "http", tcp, "10.96.0.20", 80).
		ep("10.244.1.2:8080", true, false).ep("[fd00:244::1:2]:8080", true, true).ep("[fd00:244::2:2]:8080", true, false).
		with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeLoadBalancer
			sp.ClusterIPs = addrs("10.96.0.20", "fd00:96::20")
			sp.NodePort = 30020
			sp.ExternalIPs = addrs("192.0.2.20", "2001:db8::20")
			sp.LoadBalancerIPs = addrs("203.0.113.20", "2001:db8:1::20")
			sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:2::/48")}
			sp.AffinityTimeout = 600 * time.Second
		})
}

// ipv6GoldenCases render with ipv6RenderConfig (plus cfg).
var ipv6GoldenCases = []struct {
	name string
	cfg  func(*RenderConfig)
	svc  *svc
}{
	{name: "ipv6-clusterip", svc: newSvc("ns", "web", "http", tcp, "fd00:96::10", 80).
		ep("[fd00:244::1:2]:8080", true, false).ep("[fd00:244::2:2]:8080", true, true)},
	{name: "ipv6-no-endpoints", svc: newSvc("ns", "empty", "", tcp, "fd00:96::11", 80).
		with(func(sp *state.ServicePort) { sp.NodePort = 30011; sp.ExternalIPs = addrs("2001:db8::11") })},
	{name: "ipv6-nodeport-addresses", cfg: func(c *RenderConfig) {
		c.NodePortAddresses = addrs("::1", "2001:db8::1", "192.168.1.1")
	}, svc: newSvc("ns", "np", "http", tcp, "fd00:96::12", 80).ep("[fd00:244::1:2]:8080", true, false).
		with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30012 })},
	{name: "ipv6-external-policy-local", svc: newSvc("ns", "etp", "http", tcp, "fd00:96::15", 80).
		ep("[fd00:244::1:2]:8080", true, true).ep("[fd00:244::2:2]:8080", true, false).
		with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeLoadBalancer
			sp.NodePort = 30015
			sp.HealthCheckNodePort = 32015
			sp.ExternalPolicyLocal = true
			sp.LoadBalancerIPs = addrs("2001:db8:1::15")
		})},
	{name: "ipv6-dual-stack", svc: dualStackLB()},
	{name: "ipv4-dual-stack", cfg: func(c *RenderConfig) { *c = testRenderConfig() }, svc: dualStackLB()},
}

func TestRenderGoldenIPv6(t *testing.T) {
	for _, c := range ipv6GoldenCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ipv6RenderConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			got := string(FullText(Render(snapshot(c.svc), cfg)))
			checkGolden(t, c.name, got)
		})
	}
}

// addressesIn returns every token of a restore input that parses as an address or
// a CIDR (ports and brackets stripped).
func addressesIn(text string) []netip.Addr {
	var out []netip.Addr
	for _, tok := range strings.Fields(text) {
		tok = strings.Trim(tok, `"`)
		if ap, err := netip.ParseAddrPort(tok); err == nil {
			out = append(out, ap.Addr())
			continue
		}
		if p, err := netip.ParsePrefix(tok); err == nil {
			out = append(out, p.Addr())
			continue
		}
		if a, err := netip.ParseAddr(tok); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// TestFamiliesStayApart is the bug of issue 12 item 2: a dual-stack Service with
// IPv6 endpoints put IPv6 addresses into the IPv4 restore, which failed and took
// every Service down. Each family's render must hold only its own addresses, and
// the strict fake of that family's restore tool must accept it.
func TestFamiliesStayApart(t *testing.T) {
	// Next to the dual-stack one: an IPv4 Service whose endpoints are all IPv6
	// (it has none of its family: REJECT) and one whose IPv4 endpoint is only
	// terminating (the fallback is decided within the family).
	mixed := newSvc("ns", "mixed", "http", tcp, "10.96.0.21", 80).ep("[fd00:244::1:9]:8080", true, false)
	term := newSvc("ns", "term", "http", tcp, "10.96.0.22", 80).terminating("10.244.1.3:8080", false).
		ep("[fd00:244::1:3]:8080", true, false).with(func(sp *state.ServicePort) { sp.ClusterIPs = addrs("10.96.0.22", "fd00:96::22") })
	v6only := newSvc("ns", "six", "http", tcp, "fd00:96::23", 80).ep("[fd00:244::1:4]:8080", true, false).
		with(func(sp *state.ServicePort) { sp.NodePort = 30023 })
	snap := snapshot(dualStackLB(), mixed, term, v6only)
	for _, fam := range []struct {
		cfg  RenderConfig
		fake *fakeipt.Runner
	}{{testRenderConfig(), fakeipt.NewIPv4()}, {ipv6RenderConfig(), fakeipt.NewIPv6()}} {
		t.Run(fam.cfg.family(), func(t *testing.T) {
			text := string(FullText(Render(snap, fam.cfg)))
			found := addressesIn(text)
			if len(found) == 0 {
				t.Fatalf("no address rendered:\n%s", text)
			}
			for _, a := range found {
				if !fam.cfg.inFamily(a) {
					t.Errorf("%s ruleset holds %s", fam.cfg.family(), a)
				}
			}
			if err := fam.fake.Restore(context.Background(), []byte(text), true); err != nil {
				t.Fatalf("%s restore refused: %v\n%s", fam.cfg.family(), err, text)
			}
			svcOf := func(s *svc) []string { return linesOf(text, "\""+portString(s.sp.Name)) }
			if fam.cfg.IPv6 {
				if l := svcOf(mixed); len(l) != 0 {
					t.Errorf("single-stack IPv4 Service rendered in IPv6: %q", l)
				}
				if l := linesOf(text, "--to-destination [fd00:244::1:4]:8080"); len(l) != 1 {
					t.Errorf("IPv6-only Service not DNATed: %q", l)
				}
				return
			}
			if l := svcOf(v6only); len(l) != 0 {
				t.Errorf("single-stack IPv6 Service rendered in IPv4: %q", l)
			}
			if l := linesOf(text, `"ns/mixed:http has no endpoints"`); len(l) != 1 || !strings.Contains(l[0], "icmp-port-unreachable") {
				t.Errorf("IPv4 Service with only IPv6 endpoints must reject: %q", l)
			}
			if l := linesOf(text, "--to-destination 10.244.1.3:8080"); len(l) != 1 {
				t.Errorf("the terminating IPv4 endpoint must serve while IPv4 has no ready one: %q", l)
			}
		})
	}
}

func TestIPv6HasNoLocalhostNodePorts(t *testing.T) {
	cfg := ipv6RenderConfig()
	cfg.BlockLocalnet = true // ignored for IPv6: there is no route_localnet
	r := renderFixed(cfg)
	text := string(FullText(r))
	if strings.Contains(text, chainFirewall) || strings.Contains(text, "127.0.0.0/8") {
		t.Fatalf("IPv6 ruleset has IPv4 localnet rules:\n%s", text)
	}
	tail := r.Tail[chainRef{tableNAT, chainServices}]
	if len(tail) != 1 || !strings.HasPrefix(tail[0], "! -d ::1/128 ") {
		t.Fatalf("NodePort rule must exclude ::1: %q", tail)
	}
}

func TestNodePortAddressesPerFamily(t *testing.T) {
	local := func() ([]netip.Addr, error) { return addrs("192.168.1.1", "2001:db8::1", "127.0.0.1", "::1"), nil }
	cases := []struct {
		list   []string
		v6     bool
		want   string // "all" for the addrtype rule
		reason string
	}{
		{[]string{"192.168.1.0/24"}, false, "192.168.1.1", "the IPv4 CIDR"},
		{[]string{"192.168.1.0/24"}, true, "all", "no IPv6 CIDR: all IPv6 addresses, as kube-proxy"},
		{[]string{"192.168.1.0/24", "2001:db8::/64"}, true, "2001:db8::1", "the IPv6 CIDR"},
		{[]string{"localhost"}, true, "", "::1 never serves NodePorts"},
		{nil, true, "all", "unset"},
	}
	for _, c := range cases {
		cfg := testRenderConfig()
		cfg.IPv6 = c.v6
		p := NewProxier(Config{Runner: fakeipt.New(), Render: cfg, NodePortAddresses: c.list, LocalAddresses: local})
		got, err := p.renderConfig(&state.Snapshot{})
		if err != nil {
			t.Fatal(err)
		}
		var gotS []string
		for _, r := range nodePortTail(got) {
			if strings.Contains(r, "addrtype") {
				gotS = append(gotS, "all")
			} else {
				a, _, _ := strings.Cut(strings.TrimPrefix(r, "-d "), "/")
				gotS = append(gotS, a)
			}
		}
		if strings.Join(gotS, ",") != c.want {
			t.Errorf("%v (IPv6 %v): NodePorts on %q, want %q (%s)", c.list, c.v6, gotS, c.want, c.reason)
		}
	}
}

func TestIPv6ConfigHasNoLocalnet(t *testing.T) {
	c := Config{Render: testRenderConfig(), NodePortAddresses: []string{"127.0.0.0/8"}}
	c.Render.BlockLocalnet = true
	c6 := ipv6Config(c, BackendLegacy)
	r, ok := c6.Runner.(ExecRunner)
	if !c6.Render.IPv6 || c6.Render.BlockLocalnet || !ok || !r.IPv6 || r.bin("-restore") != "ip6tables-legacy-restore" {
		t.Fatalf("IPv6 config: %+v, runner %+v", c6.Render, c6.Runner)
	}
	if !c.Render.BlockLocalnet {
		t.Fatal("the IPv4 config was changed")
	}
}
