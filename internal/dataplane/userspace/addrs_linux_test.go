//go:build linux

package userspace

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// netnsChildEnv marks the re-executed test binary that runs inside a namespace.
const netnsChildEnv = "KPROXY_USERSPACE_IN_NETNS"

// inOwnNetns reports whether the calling test runs its body here: true in the
// test binary re-executed inside a node namespace of its own (named after
// prefix), false in the parent, which builds that namespace (setup, when not
// nil, prepares it), runs the test there and fails unless it passed.
func inOwnNetns(t *testing.T, prefix string, setup func(*netns.Env)) bool {
	t.Helper()
	if os.Getenv(netnsChildEnv) != "" {
		return true
	}
	netns.RequireRoot(t)
	env := netns.New(t, prefix)
	if setup != nil {
		setup(env)
	}
	cmd := env.Node.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("test body in namespace %s failed: %v\n%s", env.Node.Name, err, out)
	}
	t.Logf("in namespace %s:\n%s", env.Node.Name, out)
	return false
}

// TestNonLocalClusterIPAsRoot runs its body in a network namespace of its own (the
// test binary re-executed with `ip netns exec`), because it adds addresses to the
// host: never to the root namespace. This kernel has no dummy links, so it checks
// the fallback to lo; where kproxy0 can be made it checks that instead.
func TestNonLocalClusterIPAsRoot(t *testing.T) {
	if !inOwnNetns(t, "userspace", nil) {
		return
	}
	a := startTCPBackend(t, "A")
	// An earlier run (of a version that added addresses) left two addresses: one
	// a Service still uses, one it does not; and one (newer) left a local route
	// that no Service uses.
	for _, ip := range []string{"10.96.77.11/32", "10.96.77.99/32"} {
		if out, err := exec.Command("ip", "addr", "add", ip, "dev", "lo", "label", loLabel).CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", ip, err, out)
		}
	}
	if out, err := exec.Command("ip", "route", "add", "local", "10.96.77.98/32", "dev", "lo", "table", "local", "proto", "107").CombinedOutput(); err != nil {
		t.Fatalf("ip route add: %v: %s", err, out)
	}
	p, _ := testProxier(t, nil)
	clusterIP := netip.MustParseAddr("10.96.77.10")
	other := netip.MustParseAddr("10.96.77.11")
	s := newSvc("web", v1.ProtocolTCP, clusterIP, 80, a)
	s2 := newSvc("udp", v1.ProtocolUDP, clusterIP, 53, startUDPBackend(t, "U"))
	s3 := newSvc("other", v1.ProtocolTCP, other, 80, a)
	// An IPv6 ClusterIP is a local route too, which the listener binds with
	// IPV6_FREEBIND; it relays to an IPv6 endpoint (its own family).
	six := netip.MustParseAddr("fd00:96::10")
	s6 := newSvc("six", v1.ProtocolTCP, six, 80, startTCPBackendOn(t, netip.IPv6Loopback(), "B6"))
	sn := snap(state.NodeInfo{}, s, s2, s3, s6)
	mustSync(t, p, sn, allChanged(sn))
	// The IPv4 ClusterIP is made local by a route, not an interface address.
	if l := linkHolding(t, clusterIP); l != "" {
		t.Fatalf("ClusterIP %s is an address of %s, want a local route only", clusterIP, l)
	}
	link := routeHolding(t, clusterIP)
	if link == "" {
		t.Fatalf("ClusterIP %s has no kproxy local route after Sync", clusterIP)
	}
	if _, err := netlink.LinkByName(dummyLink); err == nil && link != dummyLink {
		t.Fatalf("%s exists but the address went to %s", dummyLink, link)
	} else if err != nil && link != "lo" {
		t.Fatalf("without %s the address went to %s, want lo", dummyLink, link)
	}
	t.Logf("ClusterIP went to %s", link)
	// A client on the node connecting to a Service address kproxy made local has
	// that address as source: it counts as the node's at once, not at the next
	// read of the host's addresses.
	if !p.classify.inCluster(clusterIP) || !p.classify.inCluster(six) {
		t.Fatalf("Service addresses made local are not the node's: %s %v, %s %v",
			clusterIP, p.classify.inCluster(clusterIP), six, p.classify.inCluster(six))
	}
	if l := linkHolding(t, netip.MustParseAddr("10.96.77.99")); l != "" {
		t.Fatalf("the first Sync left an unused address of an earlier run on %s", l)
	}
	if l := routeHolding(t, netip.MustParseAddr("10.96.77.98")); l != "" {
		t.Fatalf("the first Sync left an unused route of an earlier run on %s", l)
	}
	if got := names(t, netip.Addr{}, s.addr(), 1)[0]; got != "A" {
		t.Fatalf("ClusterIP on %s answered %q, want A", link, got)
	}
	if l := linkHolding(t, six); l != "" || routeHolding(t, six) != link {
		t.Fatalf("IPv6 ClusterIP %s: address on %q, route on %q; want only a route on %s", six, l, routeHolding(t, six), link)
	}
	if got := names(t, netip.Addr{}, s6.addr(), 1)[0]; got != "B6" {
		t.Fatalf("IPv6 ClusterIP answered %q, want B6", got)
	}
	// Removing one of the two ports on the address keeps it; removing the Service
	// that alone used another address removes that one.
	sn2 := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn2, allChanged(sn))
	if routeHolding(t, clusterIP) == "" {
		t.Fatal("address removed while a Service port still uses it")
	}
	if l := linkHolding(t, other); l != "" {
		t.Fatalf("address of the removed Service (adopted from an earlier run) is still on %s", l)
	}
	if p.classify.inCluster(other) || !p.classify.inCluster(clusterIP) {
		t.Fatalf("after removing %s: it is the node's %v (want false), %s %v (want true)",
			other, p.classify.inCluster(other), clusterIP, p.classify.inCluster(clusterIP))
	}
	// A new Service on the address just removed gets it back at once.
	s4 := newSvc("again", v1.ProtocolTCP, other, 80, a)
	sn3 := snap(state.NodeInfo{}, s, s4)
	mustSync(t, p, sn3, allChanged(sn3))
	if got := names(t, netip.Addr{}, s4.addr(), 1)[0]; got != "A" {
		t.Fatalf("re-added ClusterIP answered %q, want A", got)
	}
	if routeHolding(t, other) == "" {
		t.Fatalf("re-added ClusterIP %s has no local route", other)
	}
	if err := p.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{clusterIP, six} {
		if l := routeHolding(t, a); l != "" {
			t.Fatalf("Cleanup left the route of %s on %s", a, l)
		}
	}
	if _, err := netlink.LinkByName(dummyLink); err == nil {
		t.Fatalf("Cleanup left %s", dummyLink)
	}
}

// routeHolding returns the link of kproxy's local route to a, or "".
func routeHolding(t *testing.T, a netip.Addr) string {
	t.Helper()
	routes, err := ourRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok && ip.Unmap() == a {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				t.Fatal(err)
			}
			return l.Attrs().Name
		}
	}
	return ""
}

// linkHolding returns the link that has address a, or "".
func linkHolding(t *testing.T, a netip.Addr) string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range addrs {
			if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
				return l.Attrs().Name
			}
		}
	}
	return ""
}

func TestCleanupLeftoversRemovesLabelledLoAddresses(t *testing.T) {
	if !inOwnNetns(t, "userspace", func(env *netns.Env) {
		env.Node.MustRun(t, "ip", "addr", "add", "10.96.5.5/32", "dev", "lo", "label", loLabel)
		env.Node.MustRun(t, "ip", "addr", "add", "10.96.5.6/32", "dev", "lo")
		env.Node.MustRun(t, "ip", "route", "add", "local", "10.96.5.7/32", "dev", "lo", "table", "local", "proto", "107")
		env.Node.MustRun(t, "ip", "route", "add", "local", "10.96.5.8/32", "dev", "lo", "table", "local")
	}) {
		return
	}
	if err := cleanupLeftovers(t.Context(), dataplane.Options{}); err != nil {
		t.Fatal(err)
	}
	if l := linkHolding(t, netip.MustParseAddr("10.96.5.5")); l != "" {
		t.Fatalf("labelled leftover still on %s", l)
	}
	if l := linkHolding(t, netip.MustParseAddr("10.96.5.6")); l != "lo" {
		t.Fatal("cleanup removed an address kproxy did not label")
	}
	if l := routeHolding(t, netip.MustParseAddr("10.96.5.7")); l != "" {
		t.Fatalf("kproxy's leftover local route still on %s", l)
	}
	out, err := exec.Command("ip", "route", "show", "table", "local", "10.96.5.8").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.96.5.8") {
		t.Fatalf("cleanup removed a local route kproxy did not add (err %v): %q", err, out)
	}
}

// The ipvs mode's local routes (through kube-ipvs0, same protocol 107) are not
// the userspace mode's to take over: a node switched between the modes without a
// cleanup must not have them adopted, and then removed, by the relay.
func TestAdoptLeavesOtherLinksRoutes(t *testing.T) {
	if !inOwnNetns(t, "userspace-adopt", func(env *netns.Env) {
		env.Node.MustRun(t, "ip", "link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "kipvs-peer")
		env.Node.MustRun(t, "ip", "route", "add", "local", "10.96.6.6/32", "dev", "kube-ipvs0", "table", "local", "proto", "107")
	}) {
		return
	}
	got, err := newAddrManager(true).adopt()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("adopted %v, the ipvs mode's routes through kube-ipvs0", got)
	}
}
