//go:build linux

package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	ipvsdp "kproxy.dev/kproxy/internal/dataplane/ipvs"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

const timeout = 5 * time.Second

// newDataplane builds the IPVS dataplane in the VM's root namespace and removes
// everything it programmed when the test ends.
func newDataplane(t *testing.T, scheduler string) dataplane.Dataplane {
	t.Helper()
	cfg := &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}
	cfg.IPVS.Scheduler = scheduler
	return newDataplaneConfig(t, cfg)
}

// newDataplaneConfig is newDataplane with a whole configuration.
func newDataplaneConfig(t *testing.T, cfg *kpconfig.KubeProxyConfiguration) dataplane.Dataplane {
	t.Helper()
	p, err := ipvsdp.New(dataplane.Options{Config: cfg})
	if err != nil {
		t.Fatalf("ipvs.New: %v", err)
	}
	dp := dataplane.NewCore(p, dataplane.CoreOptions{})
	t.Cleanup(func() { dp.Cleanup(bg) })
	return dp
}

func syncOK(t *testing.T, dp dataplane.Dataplane, b *snapshot, sp *state.ServicePort, eps []state.Endpoint) {
	t.Helper()
	snap, c := b.put(sp, eps)
	if _, err := dp.Sync(bg, snap, c); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// hits opens n connections from client to addr and counts the answering backends.
func hits(t *testing.T, client *netns.NS, addr string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := client.AskTCP(addr, timeout)
		if err != nil {
			t.Fatalf("connection %d to %s: %v (so far %v)", i, addr, err, out)
		}
		out[name]++
	}
	return out
}

func counts(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// kernelRow returns the kernel's row for address, as `kproxy list` shows it.
func kernelRow(t *testing.T, dp dataplane.Dataplane, proto, address string) dataplane.VirtualService {
	t.Helper()
	l, _ := dataplane.As[dataplane.Lister](dp)
	rows, err := l.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Protocol == proto && r.Address == address {
			return r
		}
	}
	t.Fatalf("no virtual server %s %s in the kernel table: %+v", proto, address, rows)
	return dataplane.VirtualService{}
}

func TestGuestClusterIPAndNodePortReachEveryEndpoint(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("reach-be", 3, true)
	client := tp.add("reach-cl", "192.168")
	dp := newDataplane(t, "")
	b := newSnapshot()
	b.s.Node.Addresses = []netip.Addr{client.NodeIP}
	web := service("web", "10.96.0.10", 80, v1.ProtocolTCP)
	web.Type, web.NodePort = v1.ServiceTypeNodePort, 30080
	syncOK(t, dp, b, web, endpoints(8080, backends...))
	dns := service("dns", "10.96.0.53", 53, v1.ProtocolUDP)
	syncOK(t, dp, b, dns, endpoints(5353, backends...))

	for _, addr := range []string{"10.96.0.10:80", netip.AddrPortFrom(client.NodeIP, 30080).String()} {
		got := hits(t, client, addr, 12)
		if len(got) != 3 {
			t.Errorf("%s: connections reached %v, want all 3 backends", addr, got)
		}
		t.Logf("%s: %v", addr, got)
	}
	// Hairpin: a backend reaching its own Service, and through it itself, needs the
	// KUBE-LOOP-BACK masquerade (its own reply would otherwise bypass the node).
	if got := hits(t, backends[0], "10.96.0.10:80", 6); got[backends[0].Name] == 0 || len(got) != 3 {
		t.Errorf("hairpin: a backend's connections to its Service reached %v, want all 3 including itself", got)
	}
	row := kernelRow(t, dp, "TCP", "10.96.0.10:80")
	if row.Scheduler != "rr" || len(row.RealServers) != 3 || row.RealServers[0].Forward != "Masq" || row.Service != "e2e/web:p" {
		t.Errorf("kernel row %+v", row)
	}
	// The kernel folds per-CPU counters into the totals every 2 s (its estimator).
	err := netns.Eventually(bg, 10*time.Second, func() error {
		row := kernelRow(t, dp, "TCP", "10.96.0.10:80")
		if row.Stats == nil || row.Stats.Conns < 18 || row.Stats.InPkts == 0 {
			return fmt.Errorf("kernel stats %+v, want at least 18 connections", row.Stats)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 9; i++ {
		name, err := client.AskUDP("10.96.0.53:53", timeout)
		if err != nil {
			t.Fatalf("UDP to ClusterIP: %v", err)
		}
		seen[name] = true
	}
	if len(seen) == 0 {
		t.Error("no UDP answer")
	}
	routes := localRoutes(t)
	for _, want := range []string{"10.96.0.10", "10.96.0.53"} {
		if !routes[want] {
			t.Errorf("no local route for %s through %s: %v", want, ipvsdp.DummyLink, routes)
		}
	}
	if out := sh(t, "ip", "-o", "addr", "show", "dev", ipvsdp.DummyLink); strings.Contains(out, "inet") {
		t.Errorf("%s holds addresses; Service addresses are routes through it:\n%s", ipvsdp.DummyLink, out)
	}
}

// localRoutes lists the destinations of kproxy's local routes through kube-ipvs0.
func localRoutes(t *testing.T) map[string]bool {
	t.Helper()
	out := sh(t, "ip", "-o", "route", "show", "table", "local", "proto", "107", "dev", ipvsdp.DummyLink)
	got := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "local" {
			got[f[1]] = true
		}
	}
	return got
}

// TestGuestTakesOverKubeIPVS0Addresses starts on a kube-ipvs0 as kube-proxy
// leaves it (down, a Service address and a stale one bound as interface
// addresses): the first sync replaces them with local routes and the Service
// works from a pod and from the node, whose connection has the ClusterIP as
// source as with an address. A route deleted behind kproxy's back is damage the
// periodic check finds and the next sync restores.
func TestGuestTakesOverKubeIPVS0Addresses(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("take-be", 2, false)
	client := tp.add("take-cl", "192.168")
	sh(t, "ip", "link", "add", ipvsdp.DummyLink, "type", "dummy")
	sh(t, "ip", "addr", "add", "10.96.7.7/32", "dev", ipvsdp.DummyLink)
	sh(t, "ip", "addr", "add", "10.96.7.8/32", "dev", ipvsdp.DummyLink)
	now := time.Unix(1000, 0)
	p, err := ipvsdp.New(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	dp := dataplane.NewCore(p, dataplane.CoreOptions{CheckInterval: time.Second, Now: func() time.Time { return now }})
	t.Cleanup(func() { dp.Cleanup(bg) })
	b := newSnapshot()
	web := service("web", "10.96.7.7", 80, v1.ProtocolTCP)
	syncOK(t, dp, b, web, endpoints(8080, backends...))

	if out := sh(t, "ip", "-o", "addr", "show", "dev", ipvsdp.DummyLink); strings.Contains(out, "inet ") {
		t.Errorf("the addresses kube-proxy bound are still on %s:\n%s", ipvsdp.DummyLink, out)
	}
	if r := localRoutes(t); !r["10.96.7.7"] || r["10.96.7.8"] {
		t.Errorf("local routes %v, want 10.96.7.7 and not the stale 10.96.7.8", r)
	}
	reach := func(when string) {
		t.Helper()
		if got := hits(t, client, "10.96.7.7:80", 6); len(got) != 2 {
			t.Errorf("%s: a pod's connections reached %v, want both backends", when, got)
		}
		c, err := net.DialTimeout("tcp4", "10.96.7.7:80", timeout)
		if err != nil {
			t.Fatalf("%s: from the node: %v", when, err)
		}
		defer c.Close()
		if src := c.LocalAddr().(*net.TCPAddr).IP.String(); src != "10.96.7.7" {
			t.Errorf("%s: the node's connection has source %s, want the ClusterIP", when, src)
		}
		if _, err := netns.ReadLine(c, timeout); err != nil {
			t.Errorf("%s: no answer from the node's connection: %v", when, err)
		}
	}
	reach("after the takeover")

	sh(t, "ip", "route", "del", "local", "10.96.7.7", "dev", ipvsdp.DummyLink, "table", "local", "proto", "107")
	now = now.Add(2 * time.Second)
	st, err := dp.Sync(bg, b.s, state.ChangeSet{})
	if err != nil || !st.Full {
		t.Fatalf("after the route was deleted: %+v %v, want a repairing full sync", st, err)
	}
	if !localRoutes(t)["10.96.7.7"] {
		t.Error("the deleted local route was not restored")
	}
	reach("after the repair")
}

func TestGuestSchedulersShapeTheDistribution(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("sched-be", 3, false)
	client := tp.add("sched-cl", "192.168")
	dp := newDataplane(t, "rr")
	b := newSnapshot()
	const vip = "10.96.1.1:80"
	cases := []struct {
		sched   string
		flags   []string
		weights []int
		n       int
		check   func(got map[string]int) error
	}{
		{"rr", nil, []int{1, 1, 1}, 12, exactly(4, 4, 4)},
		{"wrr", nil, []int{3, 1, 1}, 15, func(got map[string]int) error {
			if got[backends[0].Name] != 9 || got[backends[1].Name] != 3 || got[backends[2].Name] != 3 {
				return fmt.Errorf("want 9/3/3 by weight 3/1/1")
			}
			return nil
		}},
		{"wrr", nil, []int{0, 1, 1}, 6, func(got map[string]int) error {
			if got[backends[0].Name] != 0 {
				return fmt.Errorf("a real server drained to weight 0 must get no new connection")
			}
			return nil
		}},
		{"sh", nil, []int{1, 1, 1}, 12, exactly(12)},
		{"mh", nil, []int{1, 1, 1}, 12, exactly(12)},
		{"mh", []string{"mh-port"}, []int{1, 1, 1}, 12, func(got map[string]int) error {
			if len(got) < 2 {
				return fmt.Errorf("mh-port hashes the source port too: connections must spread")
			}
			return nil
		}},
	}
	for _, c := range cases {
		sp := service("sched", "10.96.1.1", 80, v1.ProtocolTCP)
		if c.sched != "rr" {
			sp.Scheduler = c.sched
		}
		sp.SchedulerFlags = c.flags
		eps := endpoints(8080, backends...)
		for i := range eps {
			eps[i].Weight = c.weights[i]
		}
		syncOK(t, dp, b, sp, eps)
		row := kernelRow(t, dp, "TCP", vip)
		if row.Scheduler != c.sched {
			t.Errorf("%s: kernel table has scheduler %q", c.sched, row.Scheduler)
		}
		for i, rs := range row.RealServers {
			if rs.Weight != c.weights[i] {
				t.Errorf("%s: real server %s weight %d, want %d", c.sched, rs.Address, rs.Weight, c.weights[i])
			}
		}
		got := hits(t, client, vip, c.n)
		if err := c.check(got); err != nil {
			t.Errorf("%s %v: distribution %v: %v", c.sched, c.flags, got, err)
		}
		t.Logf("%s %v: kernel flags %v, distribution %v", c.sched, c.flags, row.Flags, counts(got))
	}
}

// exactly checks the sorted per-backend counts.
func exactly(want ...int) func(map[string]int) error {
	return func(got map[string]int) error {
		c := counts(got)
		if fmt.Sprint(c) != fmt.Sprint(want) {
			return fmt.Errorf("counts %v, want %v", c, want)
		}
		return nil
	}
}

func TestGuestRollingUpdateKeepsLongConnection(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	olds := tp.backends("roll-old", 2, false)
	news := tp.backends("roll-new", 2, false)
	client := tp.add("roll-cl", "192.168")
	dp := newDataplane(t, "")
	b := newSnapshot()
	sp := service("roll", "10.96.2.1", 80, v1.ProtocolTCP)
	syncOK(t, dp, b, sp, endpoints(8080, olds...))

	conn, err := client.Dial("tcp4", "10.96.2.1:80", timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, err := netns.ReadLine(conn, timeout)
	if err != nil {
		t.Fatal(err)
	}
	terminating := func(eps []state.Endpoint) []state.Endpoint {
		for i := range eps {
			eps[i].Ready, eps[i].Terminating = false, true
		}
		return eps
	}
	steps := [][]state.Endpoint{
		append(endpoints(8080, olds[1], news[0]), terminating(endpoints(8080, olds[0]))...),
		append(endpoints(8080, news...), terminating(endpoints(8080, olds[1]))...),
		endpoints(8080, news...),
	}
	for i, eps := range steps {
		syncOK(t, dp, b, sp, eps)
		got, err := netns.AskConn(conn, timeout)
		if err != nil || got != first {
			t.Fatalf("step %d: the long connection broke: answer %q, %v (want %q)", i, got, err, first)
		}
	}
	got := hits(t, client, "10.96.2.1:80", 6)
	if got[news[0].Name] == 0 || got[news[1].Name] == 0 || len(got) != 2 {
		t.Errorf("after the rollout new connections reached %v, want only the new backends", got)
	}
	row := kernelRow(t, dp, "TCP", "10.96.2.1:80")
	draining := false
	for _, rs := range row.RealServers {
		if rs.Weight == 0 && rs.ActiveConn > 0 {
			draining = true
		}
	}
	if !draining {
		t.Errorf("the old backend with the open connection must stay at weight 0: %+v", row.RealServers)
	}
	if got, err := netns.AskConn(conn, timeout); err != nil || got != first {
		t.Fatalf("the long connection broke after the rollout: %q %v", got, err)
	}
}

func TestGuestCleanupLeavesNothing(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	be := tp.add("clean-be", "10.244")
	dp := newDataplane(t, "")
	b := newSnapshot()
	b.s.Node.Addresses = []netip.Addr{be.NodeIP}
	sp := service("clean", "10.96.3.1", 80, v1.ProtocolTCP)
	sp.Type, sp.NodePort = v1.ServiceTypeNodePort, 30081
	syncOK(t, dp, b, sp, endpoints(8080, be))
	if !strings.Contains(sh(t, "iptables-save"), "KUBE-SERVICES") || !strings.Contains(sh(t, "ipset", "list", "-n"), "KUBE-CLUSTER-IP") {
		t.Fatal("sync did not create the rules and sets")
	}
	// A second dataplane (a restarted daemon) does a full sync against the kernel:
	// it must find its jump rules in place rather than add them again.
	dp2 := newDataplane(t, "")
	b2 := newSnapshot()
	b2.s.Node.Addresses = b.s.Node.Addresses
	syncOK(t, dp2, b2, sp, endpoints(8080, be))
	nat := sh(t, "iptables-save", "-t", "nat")
	if n := strings.Count(nat, "-j KUBE-SERVICES"); n != 2 {
		t.Errorf("%d jumps to KUBE-SERVICES after a restart, want 2 (PREROUTING, OUTPUT):\n%s", n, nat)
	}
	if err := ipvsdp.CleanupMode(bg, dataplane.Options{}); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	assertClean(t)
	if err := ipvsdp.CleanupMode(bg, dataplane.Options{}); err != nil {
		t.Fatalf("cleanup of nothing: %v", err)
	}
}

func assertClean(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "show", ipvsdp.DummyLink).CombinedOutput(); err == nil {
		t.Errorf("%s still exists: %s", ipvsdp.DummyLink, out)
	}
	l, err := ipvsdp.NewLister()
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := l.List(bg); err != nil || len(rows) != 0 {
		t.Errorf("virtual servers left: %+v %v", rows, err)
	}
	if out := sh(t, "ipset", "list", "-n"); strings.Contains(out, "KUBE-") {
		t.Errorf("ipsets left:\n%s", out)
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		if out := sh(t, tool); strings.Contains(out, "KUBE-") {
			t.Errorf("%s shows rules left:\n%s", tool, out)
		}
	}
}

func TestGuestAffinityAndUDPEndpointRemoval(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("aff-be", 3, true)
	client := tp.add("aff-cl", "192.168")
	dp := newDataplane(t, "")
	b := newSnapshot()

	sticky := service("sticky", "10.96.7.1", 80, v1.ProtocolTCP)
	sticky.AffinityTimeout = 600 * time.Second
	syncOK(t, dp, b, sticky, endpoints(8080, backends...))
	if row := kernelRow(t, dp, "TCP", "10.96.7.1:80"); row.PersistentSeconds != 600 {
		t.Errorf("kernel row %+v, want persistent 600", row)
	}
	if got := hits(t, client, "10.96.7.1:80", 9); len(got) != 1 {
		t.Errorf("ClientIP affinity: one client reached %v, want a single backend", got)
	}

	// A UDP client keeps its socket (one conntrack flow) while its endpoint goes:
	// the real server is deleted at once and the flow's next datagrams reach another.
	dns := service("udp", "10.96.7.53", 53, v1.ProtocolUDP)
	syncOK(t, dp, b, dns, endpoints(5353, backends...))
	c, err := client.Dial("udp4", "10.96.7.53:53", timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := netns.AskConn(c, timeout)
	if err != nil {
		t.Fatal(err)
	}
	var rest []*netns.NS
	for _, be := range backends {
		if be.Name != first {
			rest = append(rest, be)
		}
	}
	syncOK(t, dp, b, dns, endpoints(5353, rest...))
	row := kernelRow(t, dp, "UDP", "10.96.7.53:53")
	if len(row.RealServers) != 2 {
		t.Errorf("the removed UDP real server must go at once: %+v", row.RealServers)
	}
	err = netns.Eventually(bg, 10*time.Second, func() error {
		got, err := netns.AskConn(c, time.Second)
		if err != nil {
			return err
		}
		if got == first {
			return fmt.Errorf("the flow still reaches the removed endpoint %s", first)
		}
		return nil
	})
	if err != nil {
		t.Errorf("UDP flow after its endpoint went: %v", err)
	}
}
