//go:build linux

package nftables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// testbed is a proxy namespace (kproxy's table, the client) linked to a backend
// namespace holding three endpoint addresses that answer on port 8080.
type testbed struct {
	proxy, backend *netns
	p              *coreProxier
}

var backends = []string{"10.200.0.2", "10.200.0.3", "10.200.0.4"}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	requireRoot(t)
	tb := &testbed{proxy: newNetns(t, "proxy"), backend: newNetns(t, "backend")}
	link(t, tb.proxy, []string{"10.200.0.1/24"}, tb.backend, []string{"10.200.0.2/24", "10.200.0.3/24", "10.200.0.4/24"})
	tb.proxy.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// Service addresses are routed towards the backends, as a cluster network would.
	tb.proxy.ip(t, "route", "add", "default", "via", "10.200.0.2")
	serveIdentity(t, tb.backend, "tcp4", "0.0.0.0:8080")
	p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	p.useNetns(tb.proxy.fd)
	// The test process is not in the proxy namespace: name its addresses, so the
	// nftables default nodePortAddresses ("primary") resolves to 10.200.0.1.
	p.localAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.200.0.1")}, nil
	}
	tb.p = p
	t.Cleanup(func() { p.watch.close() })
	return tb
}

func (tb *testbed) sync(t *testing.T, snap *state.Snapshot, changed ...state.ServicePortName) dataplane.SyncStats {
	t.Helper()
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for _, n := range changed {
		cs.Ports[n] = struct{}{}
	}
	st, err := tb.p.Sync(context.Background(), snap, cs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return st
}

// connect opens n connections to addr and returns which backend took each.
func (tb *testbed) connect(t *testing.T, addr string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		got, err := dialIdentity(t, tb.proxy, addr)
		if err != nil {
			t.Fatalf("connect %s: %v", addr, err)
		}
		out = append(out, strings.TrimSuffix(got, ":8080"))
	}
	return out
}

func backendEndpoints(flags ...string) []state.Endpoint {
	var eps []state.Endpoint
	for i, b := range backends {
		f := []string{}
		if i < len(flags) && flags[i] != "" {
			f = append(f, flags[i])
		}
		eps = append(eps, ep(b, 8080, f...))
	}
	return eps
}

func count(xs []string) map[string]int {
	m := map[string]int{}
	for _, x := range xs {
		m[x]++
	}
	return m
}

func TestKernelRoundRobinRotatesStrictly(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()}))
	got := tb.connect(t, "10.96.0.12:80", 9)
	if len(count(got[:3])) != 3 {
		t.Fatalf("first three connections %v: want three different backends", got[:3])
	}
	for i := 3; i < len(got); i++ {
		if got[i] != got[i-3] {
			t.Fatalf("connections %v do not rotate strictly (index %d)", got, i)
		}
	}
}

func TestKernelSourceHashKeepsClientOnOneBackend(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "sh", clusterIP: "10.96.0.14", port: 80, scheduler: "sh"}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()}))
	got := tb.connect(t, "10.96.0.14:80", 12)
	if c := count(got); len(c) != 1 {
		t.Fatalf("one client reached several backends with sh: %v", c)
	}
}

func TestKernelWeightsSplitThreeToOne(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "wrr", clusterIP: "10.96.0.13", port: 80, scheduler: "wrr"}
	eps := []state.Endpoint{ep(backends[0], 8080, "w3"), ep(backends[1], 8080, "w1")}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: eps}))
	c := count(tb.connect(t, "10.96.0.13:80", 40))
	if c[backends[0]] != 30 || c[backends[1]] != 10 {
		t.Fatalf("weights 3:1 gave %v over 40 connections, want 30:10", c)
	}
}

func TestKernelRandomUpdatesIncrementallyAndRejects(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	other := &spec{name: "other", clusterIP: "10.96.0.11", port: 80}
	specs := map[*spec][]state.Endpoint{s: backendEndpoints(), other: backendEndpoints()[:1]}
	if st := tb.sync(t, snapshotOf(specs)); !st.Full {
		t.Fatal("first sync was not full")
	}
	if c := count(tb.connect(t, "10.96.0.10:80", 40)); len(c) != 3 {
		t.Fatalf("random over 3 endpoints reached only %v in 40 connections", c)
	}

	// Resync without change: nothing is written.
	if st := tb.sync(t, snapshotOf(specs)); st.Full || st.Written["ip"] != 0 {
		t.Fatalf("unchanged resync: full=%v written=%v, want a partial sync writing nothing", st.Full, st.Written)
	}

	// Move the Service to one endpoint: a partial sync, and traffic follows.
	specs[s] = backendEndpoints()[2:]
	st := tb.sync(t, snapshotOf(specs), s.portName())
	if st.Full || st.Written["ip"] == 0 {
		t.Fatalf("endpoint change: full=%v written=%v, want a partial sync that writes", st.Full, st.Written)
	}
	if c := count(tb.connect(t, "10.96.0.10:80", 5)); c[backends[2]] != 5 {
		t.Fatalf("after the change connections went to %v, want only %s", c, backends[2])
	}
	if c := count(tb.connect(t, "10.96.0.11:80", 2)); c[backends[0]] != 2 {
		t.Fatalf("the unchanged Service broke: %v", c)
	}

	// No endpoints: the connection is refused, not left hanging.
	specs[s] = nil
	tb.sync(t, snapshotOf(specs), s.portName())
	_, err := dialIdentity(t, tb.proxy, "10.96.0.10:80")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Service without endpoints: dial error %v, want connection refused", err)
	}

	// The stale chains of the old endpoints are gone after the next sync.
	specs[s] = backendEndpoints()[:1]
	tb.sync(t, snapshotOf(specs), s.portName())
	listing := tb.proxy.exec(t, "nft", "list", "table", "ip", "kproxy")
	if strings.Contains(listing, "web/tcp/p__10.200.0.3") {
		t.Fatalf("stale endpoint chain still listed:\n%s", listing)
	}
	if c := count(tb.connect(t, "10.96.0.10:80", 3)); c[backends[0]] != 3 {
		t.Fatalf("after re-adding an endpoint: %v", c)
	}
}

func TestKernelResyncsFullyAfterTableChangedBehindItsBack(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	snap := snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()[:1]})
	tb.sync(t, snap)
	tb.proxy.exec(t, "nft", "flush", "table", "ip", "kproxy")
	if st := tb.sync(t, snap); !st.Full {
		t.Fatal("sync after `nft flush table` was not full")
	}
	tb.proxy.exec(t, "nft", "delete", "table", "ip", "kproxy")
	if st := tb.sync(t, snap); !st.Full {
		t.Fatal("sync after `nft delete table` was not full")
	}
	if c := count(tb.connect(t, "10.96.0.10:80", 2)); c[backends[0]] != 2 {
		t.Fatalf("after the resync: %v", c)
	}
}

func TestKernelNodePortFromAnotherHost(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "np", clusterIP: "10.96.0.18", port: 80, nodePort: 30080}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()[1:2]}))
	// The client is the backend namespace's first address; the endpoint is another
	// address in the same namespace, so the reply only comes back if the NodePort
	// traffic was masqueraded.
	got, err := dialIdentity(t, tb.backend, "10.200.0.1:30080")
	if err != nil || got != backends[1]+":8080" {
		t.Fatalf("NodePort from outside: got %q, %v; want %s", got, err, backends[1])
	}
}

func TestKernelListingMatchesRendering(t *testing.T) {
	tb := newTestbed(t)
	specs := map[*spec][]state.Endpoint{
		{name: "web", clusterIP: "10.96.0.10", port: 80}:                                                  backendEndpoints(),
		{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}:                                  backendEndpoints(),
		{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh", schedFlags: []string{"mh-port"}}: backendEndpoints(),
		{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600_000_000_000}:                    backendEndpoints(),
		{name: "lb", clusterIP: "10.96.0.19", port: 443, nodePort: 30443, lbIPs: []string{"198.51.100.7"},
			ranges: []string{"203.0.113.0/24"}, eTPLocal: true}: backendEndpoints("local"),
		{name: "empty", clusterIP: "10.96.0.20", port: 80}: nil,
	}
	snap := snapshotOf(specs)
	tb.sync(t, snap)
	listed := parseListing(tb.proxy.exec(t, "nft", "list", "table", "ip", "kproxy"))
	o, _ := tb.p.renderOptionsPure(snap)
	rs := renderAll(o[0], dataplane.NewRequest(snap))
	n := 0
	for _, fr := range rs.fragmentsInOrder() {
		for _, c := range fr.chains {
			n++
			if got, want := listed[c.name], c.bodyText(); got != want {
				t.Errorf("chain %s: kernel lists\n%s\nkproxy rendered\n%s", c.name, got, want)
			}
		}
	}
	if n != len(listed) {
		t.Errorf("kernel lists %d chains, kproxy rendered %d", len(listed), n)
	}
}

// parseListing returns each chain's rules from `nft list table`, one per line.
func parseListing(s string) map[string]string {
	out := map[string]string{}
	cur := ""
	for _, line := range strings.Split(s, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "chain "):
			cur = strings.TrimSuffix(strings.TrimPrefix(l, "chain "), " {")
			out[cur] = ""
		case l == "}":
			cur = ""
		case cur != "" && l != "" && !strings.HasPrefix(l, "type "):
			out[cur] += l + "\n"
		}
	}
	return out
}

func TestKernelCleanupRemovesTables(t *testing.T) {
	tb := newTestbed(t)
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{{name: "web", clusterIP: "10.96.0.10", port: 80}: backendEndpoints()}))
	if err := tb.p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := tb.proxy.exec(t, "nft", "list", "tables"); strings.Contains(out, "kproxy") {
		t.Fatalf("tables left after Cleanup:\n%s", out)
	}
	if err := tb.p.Cleanup(context.Background()); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}

// The text script (golden format, BaselineApply) must load with plain nft and list
// the same chains as the netlink path.
func TestKernelScriptLoadsWithNft(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "script")
	specs := map[*spec][]state.Endpoint{
		{name: "web", clusterIP: "10.96.0.10", port: 80}:                                                backendEndpoints(),
		{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}:                                backendEndpoints(),
		{name: "sticky", clusterIP: "10.96.0.17", port: 80, nodePort: 30017, affinity: 600_000_000_000}: backendEndpoints(),
		{name: "empty", clusterIP: "10.96.0.20", port: 80}:                                              nil,
	}
	snap := snapshotOf(specs)
	rs := renderAll(testOptions(familyIPv4), dataplane.NewRequest(snap))
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(scriptText(rs))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f rejected the script: %v\n%s", err, out)
	}
	listed := parseListing(ns.exec(t, "nft", "list", "table", "ip", "kproxy"))
	for _, fr := range rs.fragmentsInOrder() {
		for _, c := range fr.chains {
			if got, want := listed[c.name], c.bodyText(); got != want {
				t.Errorf("chain %s: nft lists\n%s\nscript had\n%s", c.name, got, want)
			}
		}
	}
}

func testDPOptions() dataplane.Options {
	return dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}}
}

func TestKernelIPv6(t *testing.T) {
	requireRoot(t)
	proxy, backend := newNetns(t, "proxy6"), newNetns(t, "backend6")
	link(t, proxy, nil, backend, nil)
	devs := func(ns *netns) string {
		out := ns.ip(t, "-o", "link", "show", "type", "veth")
		name, _, _ := strings.Cut(strings.TrimSpace(strings.SplitN(out, ":", 3)[1]), "@")
		return name
	}
	proxy.ip(t, "addr", "add", "fd00:200::1/64", "dev", devs(proxy), "nodad")
	for _, a := range []string{"fd00:200::2/64", "fd00:200::3/64"} {
		backend.ip(t, "addr", "add", a, "dev", devs(backend), "nodad")
	}
	proxy.ip(t, "-6", "route", "add", "default", "via", "fd00:200::2")
	serveIdentity(t, backend, "tcp6", "[::]:8080")
	p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{ClusterCIDR: "fd00:244::/64"}})
	if err != nil {
		t.Fatal(err)
	}
	p.useNetns(proxy.fd)
	tb := &testbed{proxy: proxy, p: p}
	eps := []state.Endpoint{ep("fd00:200::2", 8080), ep("fd00:200::3", 8080)}
	random := &spec{name: "web6", clusterIP: "fd00:96::10", port: 80}
	rr := &spec{name: "rr6", clusterIP: "fd00:96::12", port: 80, scheduler: "rr"}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{random: eps, rr: eps}))
	for _, addr := range []string{"[fd00:96::10]:80", "[fd00:96::12]:80"} {
		var got []string
		for range 20 {
			s, err := dialIdentity(t, proxy, addr)
			if err != nil {
				t.Fatalf("connect %s: %v", addr, err)
			}
			got = append(got, s)
		}
		if c := count(got); len(c) != 2 {
			t.Fatalf("%s: 20 connections reached %v, want both endpoints", addr, c)
		}
	}
}

func TestKernelLoadBalancerSourceRanges(t *testing.T) {
	tb := newTestbed(t)
	lb := &spec{name: "lb", clusterIP: "10.96.0.19", port: 80, lbIPs: []string{"198.51.100.7"}, ranges: []string{"10.200.0.0/24"}}
	specs := map[*spec][]state.Endpoint{lb: backendEndpoints()[:1]}
	tb.sync(t, snapshotOf(specs))
	if got, err := dialIdentity(t, tb.proxy, "198.51.100.7:80"); err != nil || got != backends[0]+":8080" {
		t.Fatalf("client inside loadBalancerSourceRanges: got %q, %v", got, err)
	}
	lb.ranges = []string{"192.0.2.0/24"}
	tb.sync(t, snapshotOf(specs), lb.portName())
	if got, err := dialIdentity(t, tb.proxy, "198.51.100.7:80"); err == nil {
		t.Fatalf("client outside loadBalancerSourceRanges reached %q", got)
	}
	if got, err := dialIdentity(t, tb.proxy, "10.96.0.19:80"); err != nil || got != backends[0]+":8080" {
		t.Fatalf("the ClusterIP must stay open to everyone: got %q, %v", got, err)
	}
}

func TestKernelSessionAffinityKeepsClient(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600_000_000_000}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()}))
	if c := count(tb.connect(t, "10.96.0.17:80", 15)); len(c) != 1 {
		t.Fatalf("ClientIP affinity: one client reached %v", c)
	}
}

// Traffic routed through the node (from a pod or another host) to a Service without
// endpoints is refused too, in the forward hook.
func TestKernelNoEndpointsRefusedForRoutedTraffic(t *testing.T) {
	tb := newTestbed(t)
	tb.backend.ip(t, "route", "add", "10.96.0.0/16", "via", "10.200.0.1")
	s := &spec{name: "empty", clusterIP: "10.96.0.11", port: 80}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: nil}))
	_, err := dialIdentity(t, tb.backend, "10.96.0.11:80")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("routed connection to a Service without endpoints: %v, want connection refused", err)
	}
}

func TestKernelNodeChangeRerendersEveryService(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "local", clusterIP: "10.96.0.21", port: 80, iTPLocal: true}
	eps := []state.Endpoint{ep(backends[0], 8080)}
	eps[0].NodeName = "node-b"
	snap := snapshotOf(map[*spec][]state.Endpoint{s: eps})
	tb.sync(t, snap)
	if _, err := dialIdentity(t, tb.proxy, "10.96.0.21:80"); err == nil {
		t.Fatal("iTP=Local without a local endpoint answered")
	}
	// The endpoint's locality is what the node change altered; no port is listed as
	// changed, only the node.
	local := append([]state.Endpoint(nil), eps...)
	local[0].IsLocal = true
	snap = withEndpoints(snap, map[state.ServicePortName][]state.Endpoint{s.portName(): local})
	st, err := tb.p.Sync(context.Background(), snap, state.ChangeSet{NodeChanged: true})
	if err != nil || st.Full {
		t.Fatalf("node change: full=%v err=%v, want a partial sync", st.Full, err)
	}
	if got, err := dialIdentity(t, tb.proxy, "10.96.0.21:80"); err != nil || got != backends[0]+":8080" {
		t.Fatalf("after the node change: %q, %v", got, err)
	}
}

func TestKernelNodePortAddressesAndExternalIPs(t *testing.T) {
	tb := newTestbed(t)
	p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{
		ClusterCIDR: "10.244.0.0/16", NodePortAddresses: []string{"10.200.0.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	p.useNetns(tb.proxy.fd)
	p.localAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.200.0.1")}, nil
	}
	tb.p = p
	s := &spec{name: "np", clusterIP: "10.96.0.18", port: 80, nodePort: 30080, external: []string{"192.0.2.10"}}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()[:1]}))
	for _, addr := range []string{"10.200.0.1:30080", "192.0.2.10:80"} {
		if got, err := dialIdentity(t, tb.proxy, addr); err != nil || got != backends[0]+":8080" {
			t.Fatalf("%s: got %q, %v; want %s", addr, got, err, backends[0])
		}
	}
	// 127.0.0.1 is a node address too, but outside nodePortAddresses.
	if got, err := dialIdentity(t, tb.proxy, "127.0.0.1:30080"); err == nil {
		t.Fatalf("NodePort answered on 127.0.0.1 outside nodePortAddresses: %q", got)
	}
}

func TestKernelListShowsEffectiveScheduler(t *testing.T) {
	tb := newTestbed(t)
	rr := &spec{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}
	lc := &spec{name: "lc", clusterIP: "10.96.0.16", port: 80, scheduler: "lc", external: []string{"192.0.2.16"}}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{rr: backendEndpoints(), lc: backendEndpoints()[:2]}))
	vss, err := tb.p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, vs := range vss {
		got[vs.Address] = fmt.Sprintf("%s/%d", vs.Scheduler, len(vs.RealServers))
	}
	want := map[string]string{"10.96.0.12:80": "rr/3", "10.96.0.16:80": "random/2", "192.0.2.16:80": "random/2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List: %v, want %v (lc falls back to random)", got, want)
	}
}

func TestVerdictMapSizeIsTwiceTheElementsAsAPowerOfTwo(t *testing.T) {
	for _, c := range []struct {
		n    int
		want uint32
	}{{0, 1024}, {512, 1024}, {513, 2048}, {100000, 262144}, {131072, 262144}, {131073, 524288}} {
		if got := verdictMapSize(c.n); got != c.want {
			t.Errorf("verdictMapSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestKernelServiceIPsGrowsPastItsSize: service-ips is declared with a size (the
// kernel's fixed hash, cheaper to validate); Services added past it by partial
// syncs make the kernel refuse the element, and that sync turns full, declaring
// the map larger, with every Service reachable. The Services use rr: only Services
// with chains of their own are service-ips elements (shared.go).
func TestKernelServiceIPsGrowsPastItsSize(t *testing.T) {
	defer func(n int) { verdictMapSizeMin = n }(verdictMapSizeMin)
	verdictMapSizeMin = 2
	tb := newTestbed(t)
	specs := map[*spec][]state.Endpoint{{name: "s0", clusterIP: "10.96.0.10", port: 80, scheduler: "rr"}: backendEndpoints()[:1]}
	tb.sync(t, snapshotOf(specs))
	if l := tb.proxy.exec(t, "nft", "list", "map", "ip", "kproxy", mapServiceIPs); !strings.Contains(l, "size 2") {
		t.Fatalf("service-ips after a full sync of one Service, want size 2:\n%s", l)
	}
	full := 0
	for i := 1; i <= 4; i++ {
		s := &spec{name: fmt.Sprintf("s%d", i), clusterIP: fmt.Sprintf("10.96.0.%d", 10+i), port: 80, scheduler: "rr"}
		specs[s] = backendEndpoints()[1:2]
		if st := tb.sync(t, snapshotOf(specs), s.portName()); st.Full {
			full++
		}
	}
	// 1 -> 2 elements fits; the 3rd overflows (full sync, size 8); 4 and 5 fit.
	if full != 1 {
		t.Errorf("%d of 4 Service additions synced fully, want 1 (the one past the size)", full)
	}
	if l := tb.proxy.exec(t, "nft", "list", "map", "ip", "kproxy", mapServiceIPs); !strings.Contains(l, "size 8") {
		t.Errorf("service-ips after growing to 5 Services, want size 8:\n%s", l)
	}
	for i := 0; i <= 4; i++ {
		addr := fmt.Sprintf("10.96.0.%d:80", 10+i)
		want := backends[1]
		if i == 0 {
			want = backends[0]
		}
		if c := count(tb.connect(t, addr, 2)); c[want] != 2 {
			t.Errorf("%s reached %v, want %s", addr, c, want)
		}
	}
}
