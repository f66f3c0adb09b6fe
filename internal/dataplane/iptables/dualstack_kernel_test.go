//go:build linux

package iptables

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// ask connects from ns to addr over network and returns the first line.
func ask(ns *netns.NS, network, addr string) (string, error) {
	c, err := ns.Dial(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return netns.ReadLine(c, 2*time.Second)
}

// dualKernelProxier is the mode's dual-stack Programmer on both families' real
// tools inside the node namespace.
func dualKernelProxier(env *netns.Env, b Backend) (coreProxier, *dualProxier) {
	wrap := []string{"ip", "netns", "exec", env.Node.Name}
	d := &dualProxier{
		v4: NewProxier(Config{Runner: ExecRunner{Backend: b, Wrap: wrap}, Render: testRenderConfig()}),
		v6: NewProxier(Config{Runner: ExecRunner{Backend: b, IPv6: true, Wrap: wrap}, Render: ipv6RenderConfig()}),
	}
	now := time.Unix(1000, 0)
	return coreProxier{Proxier: d.v4, core: dataplane.NewCore(d, dataplane.CoreOptions{Now: func() time.Time { return now }})}, d
}

// TestKernelDualStackService: a dual-stack Service with endpoints in both families
// is reachable from the node over its IPv4 and its IPv6 ClusterIP, each reaching
// an endpoint of its own family; and IPv6 endpoints no longer break IPv4 (before,
// the IPv4 restore failed on them and nothing was programmed at all).
func TestKernelDualStackService(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env := netns.New(t, "iptables-ds")
			env.Node.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
			pod := env.AddBackend("pod")
			pod6 := env.AddIPv6(t, pod, "244", 1)
			pod.ServeTCPReply(t, 8080, "v4 endpoint")
			pod.ServeTCP6Reply(t, 8080, "v6 endpoint")
			// The node has no default route; Service ranges must be routable for
			// the locally generated packet to reach nat OUTPUT.
			env.Node.MustRun(t, "ip", "route", "add", "10.96.0.0/16", "dev", pod.NodeLink)
			env.Node.MustRun(t, "ip", "-6", "route", "add", "fd00:96::/64", "dev", pod.NodeLink)

			dual := newSvc("ns", "dual", "http", tcp, "10.96.0.20", 80).
				ep(pod.IP.String()+":8080", true, true).ep(netip.AddrPortFrom(pod6, 8080).String(), true, true).
				with(func(sp *state.ServicePort) { sp.ClusterIPs = addrs("10.96.0.20", "fd00:96::20") })
			// An IPv4 Service whose only endpoint is IPv6: rejected in IPv4, and
			// harmless to everything else.
			mixed := newSvc("ns", "mixed", "http", tcp, "10.96.0.21", 80).ep(netip.AddrPortFrom(pod6, 8080).String(), true, true)
			p, _ := dualKernelProxier(env, b)
			st, err := p.Sync(context.Background(), snapshot(dual, mixed), changes())
			if err != nil {
				t.Fatal(err)
			}
			if st.Rules["nat"] == 0 {
				t.Fatalf("no rules counted: %+v", st)
			}
			for _, c := range []struct{ network, addr, want string }{
				{"tcp4", "10.96.0.20:80", "v4 endpoint"},
				{"tcp6", "[fd00:96::20]:80", "v6 endpoint"},
			} {
				if got, err := ask(env.Node, c.network, c.addr); err != nil || got != c.want {
					t.Errorf("node -> %s: got %q, %v; want %q", c.addr, got, err, c.want)
				}
			}
			_, err = ask(env.Node, "tcp4", "10.96.0.21:80")
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("IPv4 Service with only an IPv6 endpoint: %v, want connection refused", err)
			}
			saved := env.Node.MustRun(t, "iptables-"+string(b)+"-save")
			if strings.Contains(saved, "fd00:") {
				t.Errorf("IPv4 tables hold IPv6 addresses:\n%s", saved)
			}
		})
	}
}

// TestKernelIPv6RoundTrip loads the IPv6 golden Services into ip6tables: a second
// full sync must find nothing to rewrite, which proves the IPv6 rendering matches
// ip6tables-save's format exactly (masks, brackets, icmp6).
func TestKernelIPv6RoundTrip(t *testing.T) {
	netns.RequireRoot(t)
	var svcs []*svc
	for _, c := range ipv6GoldenCases {
		if c.cfg == nil {
			svcs = append(svcs, c.svc)
		}
	}
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env := netns.New(t, "iptables-ds")
			r := &recordingRunner{Runner: ExecRunner{Backend: b, IPv6: true, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}}
			p := withCore(NewProxier(Config{Runner: r, Render: ipv6RenderConfig()}), dataplane.CoreOptions{})
			snap := snapshot(svcs...)
			if _, err := p.Sync(context.Background(), snap, changes()); err != nil {
				t.Fatal(err)
			}
			saved := env.Node.MustRun(t, "ip6tables-"+string(b)+"-save")
			for _, want := range []string{"--reject-with icmp6-port-unreachable", "--to-destination [fd00:244::1:2]:8080", "--mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
				if !strings.Contains(saved, want) {
					t.Errorf("ip6tables lacks %q:\n%s", want, saved)
				}
			}
			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(context.Background(), snap, changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("second full sync wrote:\n%s", r.restores[len(r.restores)-1])
			}
			if bad, err := p.Damaged(context.Background()); bad || err != nil {
				t.Fatalf("Damaged after a clean sync: %v %v", bad, err)
			}
		})
	}
}

// TestKernelCleanupBothFamilies: CleanupAll-style cleanup of the dual Programmer
// leaves no KUBE- chain in iptables nor ip6tables.
func TestKernelCleanupBothFamilies(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env := netns.New(t, "iptables-ds")
			p, _ := dualKernelProxier(env, b)
			if _, err := p.Sync(context.Background(), snapshot(dualStackLB()), changes()); err != nil {
				t.Fatal(err)
			}
			for _, tool := range []string{"iptables-", "ip6tables-"} {
				if out := env.Node.MustRun(t, tool+string(b)+"-save"); !strings.Contains(out, "KUBE-SVC-") {
					t.Fatalf("%s holds no Service chain after the sync:\n%s", tool, out)
				}
			}
			if err := p.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, tool := range []string{"iptables-", "ip6tables-"} {
				if out := env.Node.MustRun(t, tool+string(b)+"-save"); strings.Contains(out, "KUBE-") {
					t.Errorf("%s still mentions KUBE- after cleanup:\n%s", tool, out)
				}
			}
		})
	}
}
