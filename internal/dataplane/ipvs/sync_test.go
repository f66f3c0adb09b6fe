//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipvs"
)

func TestSyncProgramsEveryServiceAddress(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	f.snap.Node.Addresses = []netip.Addr{netip.MustParseAddr("192.168.7.2")}
	sp := clusterIP("web", "10.96.0.10", 80, v1.ProtocolTCP)
	sp.Type = v1.ServiceTypeLoadBalancer
	sp.NodePort = 30080
	sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.5")}
	sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("198.18.0.9")}
	sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	f.sync(f.set(sp.Name, sp, localEp("10.1.0.1:8080", 1), ep("10.1.0.2:8080", 1)))

	want := map[string]int{"10.1.0.1:8080": 1, "10.1.0.2:8080": 1}
	for _, k := range []vsKey{key("10.96.0.10:80", protoTCP), key("203.0.113.5:80", protoTCP), key("198.18.0.9:80", protoTCP), key("192.168.7.2:30080", protoTCP)} {
		if got := f.weights(k); !sameWeights(got, want) {
			t.Errorf("virtual server %s: real servers %v, want %v", k, got, want)
		}
		if s := f.vs(k); s != nil && s.SchedName != "rr" {
			t.Errorf("virtual server %s: scheduler %q, want rr", k, s.SchedName)
		}
	}
	if n := f.ipvs.Len(); n != 4 {
		t.Errorf("%d virtual servers, want 4", n)
	}
	for _, a := range []string{"10.96.0.10", "203.0.113.5", "198.18.0.9"} {
		if !f.links.Has(DummyLink, netip.MustParseAddr(a)) {
			t.Errorf("%s not bound to %s", a, DummyLink)
		}
	}
	if f.links.Has(DummyLink, netip.MustParseAddr("192.168.7.2")) {
		t.Error("node address must not be bound to kube-ipvs0")
	}
	for _, e := range []setEntry{
		{setClusterIP, "10.96.0.10,tcp:80"},
		{setExternalIP, "203.0.113.5,tcp:80"},
		{setLoadBalancer, "198.18.0.9,tcp:80"},
		{setLoadBalancerFW, "198.18.0.9,tcp:80"},
		{setLoadBalancerSourceCIDR, "198.18.0.9,tcp:80,192.0.2.0/24"},
		{setNodePortTCP, "30080"},
		{setLoopBack, "10.1.0.1,tcp:8080,10.1.0.1"},
		{setIPVSIPs, "10.96.0.10"},
	} {
		if !f.ipset.Has(e.Set, e.Entry) {
			t.Errorf("ipset %s lacks %s", e.Set, e.Entry)
		}
	}
	// Only a local endpoint can hairpin through this node: the remote one has no
	// KUBE-LOOP-BACK entry (kube-proxy's IPVS mode adds local endpoints only).
	if f.ipset.Has(setLoopBack, "10.1.0.2,tcp:8080,10.1.0.2") {
		t.Error("ipset KUBE-LOOP-BACK holds the remote endpoint 10.1.0.2")
	}
}

func TestUnchangedServiceCausesNoWrites(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	a := clusterIP("a", "10.96.0.1", 80, v1.ProtocolTCP)
	b := clusterIP("b", "10.96.0.2", 53, v1.ProtocolUDP)
	f.set(a.Name, a, ep("10.1.0.1:80", 1))
	f.sync(f.set(b.Name, b, ep("10.1.0.2:53", 1)))
	f.ipvs.TakeWrites()
	linkWrites, ipsetRestores, iptRestores := f.links.Writes(), len(f.ipset.Restores()), len(f.ipt.V4.Restores())

	// A sync with nothing changed writes nothing at all.
	f.sync(state.ChangeSet{})
	if len(f.ipt.V4.Restores()) != iptRestores || len(f.ipset.Restores()) != ipsetRestores {
		t.Fatalf("an empty change set ran iptables-restore or ipset restore")
	}
	// A full re-sync of the same snapshot (after a failure) diffs against the
	// kernel and writes no IPVS object, address or set entry either.
	f.core.Invalidate()
	f.sync(state.ChangeSet{})
	if w := f.ipvs.TakeWrites(); len(w) != 0 {
		t.Fatalf("unchanged services caused IPVS writes: %v", w)
	}
	if f.links.Writes() != linkWrites {
		t.Fatalf("unchanged services rewrote addresses")
	}
	for _, r := range f.ipset.Restores()[ipsetRestores:] {
		if strings.Contains(r, "add ") || strings.Contains(r, "del ") {
			t.Fatalf("unchanged services rewrote ipset entries:\n%s", r)
		}
	}

	// Changing b touches only b's virtual server, even when a is listed as changed.
	c := f.set(b.Name, b, ep("10.1.0.3:53", 1))
	c.Ports[a.Name] = struct{}{}
	f.sync(c)
	for _, w := range f.ipvs.TakeWrites() {
		if strings.Contains(w, "10.96.0.1:80") {
			t.Errorf("unchanged service a was written: %s", w)
		}
	}
}

func TestSchedulerFlagsPersistenceAndWeights(t *testing.T) {
	f := newFixture(t, proxierOptions{Scheduler: "wrr"})
	def := clusterIP("def", "10.96.0.1", 80, v1.ProtocolTCP)
	f.set(def.Name, def, ep("10.1.0.1:80", 3), ep("10.1.0.2:80", 1))
	mh := clusterIP("mh", "10.96.0.2", 80, v1.ProtocolTCP)
	mh.Scheduler, mh.SchedulerFlags = "mh", []string{"mh-fallback", "mh-port"}
	f.set(mh.Name, mh, ep("10.1.0.3:80", 1))
	aff := clusterIP("aff", "10.96.0.3", 80, v1.ProtocolTCP)
	aff.AffinityTimeout = 600 * time.Second
	f.sync(f.set(aff.Name, aff, ep("10.1.0.4:80", 1)))

	s := f.vs(key("10.96.0.1:80", protoTCP))
	if s.SchedName != "wrr" || s.Flags != 0 {
		t.Errorf("default: scheduler %q flags %#x, want wrr 0", s.SchedName, s.Flags)
	}
	if got := f.weights(key("10.96.0.1:80", protoTCP)); got["10.1.0.1:80"] != 3 || got["10.1.0.2:80"] != 1 {
		t.Errorf("weights %v, want 3 and 1", got)
	}
	s = f.vs(key("10.96.0.2:80", protoTCP))
	if s.SchedName != "mh" || s.Flags != flagSched1|flagSched2 {
		t.Errorf("mh: scheduler %q flags %#x, want mh %#x", s.SchedName, s.Flags, flagSched1|flagSched2)
	}
	s = f.vs(key("10.96.0.3:80", protoTCP))
	if s.Flags != flagPersistent || s.Timeout != 600 || s.Netmask != 0xffffffff {
		t.Errorf("affinity: flags %#x timeout %d netmask %#x, want persistent 600 /32", s.Flags, s.Timeout, s.Netmask)
	}

	// Changing the scheduler updates the virtual server in place.
	f.ipvs.TakeWrites()
	mh2 := *mh
	mh2.Scheduler, mh2.SchedulerFlags = "sh", nil
	f.sync(f.set(mh.Name, &mh2, ep("10.1.0.3:80", 1)))
	if w := f.ipvs.TakeWrites(); len(w) != 1 || !strings.HasPrefix(w[0], "update-service") {
		t.Errorf("scheduler change wrote %v, want one update-service", w)
	}
}

// random is a kproxy scheduler (iptables and nftables pick at random) but no IPVS
// module: the Service is served with the node default and a warning, not dropped.
func TestSchedulerTheKernelLacksFallsBackToDefault(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t, proxierOptions{Scheduler: "wrr", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	sp := clusterIP("rand", "10.96.0.9", 80, v1.ProtocolTCP)
	sp.Scheduler = "random"
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 2)))
	s := f.vs(key("10.96.0.9:80", protoTCP))
	if s == nil {
		t.Fatal("a Service asking for random was not programmed")
	}
	if s.SchedName != "wrr" || s.Flags != 0 {
		t.Fatalf("scheduler %q flags %#x, want the node default wrr, 0", s.SchedName, s.Flags)
	}
	if got := f.weights(key("10.96.0.9:80", protoTCP)); !sameWeights(got, map[string]int{"10.1.0.1:80": 1, "10.1.0.2:80": 2}) {
		t.Fatalf("real servers %v", got)
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, `\"random\"`) || !strings.Contains(l, "ns/rand:p") {
		t.Fatalf("want a warning naming the service and scheduler, log:\n%s", l)
	}
}

func TestBadSchedulerKeepsLastGoodState(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	bad := *sp
	bad.Scheduler = "nope"
	f.sync(f.set(sp.Name, &bad, ep("10.1.0.2:80", 1)))
	if got := f.weights(key("10.96.0.1:80", protoTCP)); !sameWeights(got, map[string]int{"10.1.0.1:80": 1}) {
		t.Fatalf("after a bad annotation the last good state must serve; got %v", got)
	}
	if _, err := renderPort(&bad, state.Categorized{}, renderOptions{}); err == nil || !strings.Contains(err.Error(), "ns/web:p") || !strings.Contains(err.Error(), state.AnnotationScheduler) {
		t.Fatalf("error must name the service and annotation: %v", err)
	}
}

func TestRemovedTCPEndpointDrainsThenGoes(t *testing.T) {
	f := newFixture(t, proxierOptions{GracefulTimeout: hour})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	k := key("10.96.0.1:80", protoTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)))
	old := netip.MustParseAddrPort("10.1.0.1:80")
	f.ipvs.SetConns(fakeipvs.Key(k), old, 1, 2)

	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:80", 1), ep("10.1.0.3:80", 1)))
	if got := f.weights(k); !sameWeights(got, map[string]int{"10.1.0.1:80": 0, "10.1.0.2:80": 1, "10.1.0.3:80": 1}) {
		t.Fatalf("removed endpoint with connections must stay at weight 0; got %v", got)
	}
	f.ipvs.SetConns(fakeipvs.Key(k), old, 0, 1)
	f.p.mu.Lock()
	f.p.graceful.process()
	f.p.mu.Unlock()
	if got := f.weights(k); got["10.1.0.1:80"] != 0 || len(got) != 3 {
		t.Fatalf("inactive connections must keep it: %v", got)
	}
	f.ipvs.SetConns(fakeipvs.Key(k), old, 0, 0)
	f.p.mu.Lock()
	f.p.graceful.process()
	f.p.mu.Unlock()
	if got := f.weights(k); !sameWeights(got, map[string]int{"10.1.0.2:80": 1, "10.1.0.3:80": 1}) {
		t.Fatalf("drained endpoint must be deleted; got %v", got)
	}
}

func TestDrainingEndpointComesBackAndTimeout(t *testing.T) {
	f := newFixture(t, proxierOptions{GracefulTimeout: time.Minute})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	k := key("10.96.0.1:80", protoTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)))
	a := netip.MustParseAddrPort("10.1.0.1:80")
	f.ipvs.SetConns(fakeipvs.Key(k), a, 5, 0)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:80", 1)))
	// It comes back: updated in place, not re-created.
	f.ipvs.TakeWrites()
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)))
	if w := f.ipvs.TakeWrites(); len(w) != 1 || !strings.HasPrefix(w[0], "update-dest") {
		t.Fatalf("returning endpoint wrote %v, want one update-dest", w)
	}
	// Terminating (not ready, serving) while others are ready: drained, then the
	// timeout deletes it despite connections.
	term := ep("10.1.0.1:80", 1)
	term.Ready, term.Terminating = false, true
	f.sync(f.set(sp.Name, sp, term, ep("10.1.0.2:80", 1)))
	if got := f.weights(k); got["10.1.0.1:80"] != 0 || len(got) != 2 {
		t.Fatalf("terminating endpoint must drain at weight 0: %v", got)
	}
	now := time.Now()
	f.p.graceful.now = func() time.Time { return now.Add(2 * time.Minute) }
	f.p.mu.Lock()
	f.p.graceful.process()
	f.p.mu.Unlock()
	if got := f.weights(k); len(got) != 1 {
		t.Fatalf("after the timeout the draining endpoint must go: %v", got)
	}
}

func TestRemovedUDPEndpointGoesAtOnceWithConntrack(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("dns", "10.96.0.10", 53, v1.ProtocolUDP)
	k := key("10.96.0.10:53", protoUDP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:53", 1), ep("10.1.0.2:53", 1)))
	f.ipvs.SetConns(fakeipvs.Key(k), netip.MustParseAddrPort("10.1.0.1:53"), 0, 4)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:53", 1)))
	if got := f.weights(k); !sameWeights(got, map[string]int{"10.1.0.2:53": 1}) {
		t.Fatalf("UDP real server must be deleted at once: %v", got)
	}
	found := false
	for _, flt := range f.ct.Filters() {
		if flt.Endpoint.String() == "10.1.0.1:53" && flt.OrigDst.String() == "10.96.0.10" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no conntrack cleanup for 10.1.0.1:53 via 10.96.0.10: %v", f.ct.Filters())
	}
}

func TestRemovedServiceTakesItsKernelState(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	a := clusterIP("a", "10.96.0.1", 80, v1.ProtocolTCP)
	a2 := clusterIP("a", "10.96.0.1", 443, v1.ProtocolTCP)
	a2.Name.Port = "https"
	f.set(a.Name, a, ep("10.1.0.1:80", 1))
	f.sync(f.set(a2.Name, a2, ep("10.1.0.1:443", 1)))
	f.sync(f.set(a.Name, nil))
	// The address is shared by the https port: it stays.
	if !f.links.Has(DummyLink, netip.MustParseAddr("10.96.0.1")) || f.vs(key("10.96.0.1:443", protoTCP)) == nil {
		t.Fatal("the remaining port lost its address or virtual server")
	}
	if f.vs(key("10.96.0.1:80", protoTCP)) != nil || f.ipset.Has(setClusterIP, "10.96.0.1,tcp:80") {
		t.Fatal("removed port left its virtual server or ipset entry")
	}
	f.sync(f.set(a2.Name, nil))
	if addrs, _ := f.links.Addrs(DummyLink); len(addrs) != 0 || f.ipvs.Len() != 0 || f.ipset.Has(setIPVSIPs, "10.96.0.1") {
		t.Fatalf("removing every service must leave nothing: addrs %v svcs %d", addrs, f.ipvs.Len())
	}
}

func TestFullSyncReconcilesStaleKernelState(t *testing.T) {
	f := newFixture(t, proxierOptions{ExcludeCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}})
	keep := clusterIP("keep", "10.96.0.1", 80, v1.ProtocolTCP)
	f.set(keep.Name, keep, ep("10.1.0.1:80", 1))
	// Left by a previous run: the same virtual server, a stale one, an excluded one,
	// a stale address and a stale set entry.
	_ = f.links.EnsureDummy(DummyLink)
	_ = f.ipvs.NewService(toService(&virtualServer{Key: key("10.96.0.1:80", protoTCP), Scheduler: "rr"}))
	_ = f.ipvs.NewDestination(keyOnlyService(key("10.96.0.1:80", protoTCP)), toDestination(netip.MustParseAddrPort("10.1.0.1:80"), 1))
	_ = f.ipvs.NewService(toService(&virtualServer{Key: key("10.96.9.9:80", protoTCP), Scheduler: "rr"}))
	_ = f.ipvs.NewService(toService(&virtualServer{Key: key("172.30.0.1:80", protoTCP), Scheduler: "rr"}))
	_ = f.links.AddAddr(DummyLink, netip.MustParseAddr("10.96.9.9"))
	_ = f.links.AddAddr(DummyLink, netip.MustParseAddr("10.96.0.1"))
	_ = f.ipset.Restore(context.Background(), renderCreate(false, kubeProxySize)+"add KUBE-CLUSTER-IP 10.96.9.9,tcp:80\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n")
	f.ipvs.TakeWrites()

	f.sync(state.ChangeSet{})
	w := f.ipvs.TakeWrites()
	if len(w) != 1 || w[0] != "del-service TCP/10.96.9.9:80" {
		t.Fatalf("full sync wrote %v, want only the stale virtual server deleted", w)
	}
	if f.vs(key("172.30.0.1:80", protoTCP)) == nil {
		t.Fatal("a virtual server in excludeCIDRs was deleted")
	}
	if f.links.Has(DummyLink, netip.MustParseAddr("10.96.9.9")) || !f.links.Has(DummyLink, netip.MustParseAddr("10.96.0.1")) {
		t.Fatalf("addresses not reconciled: %v", f.node.Dump(DummyLink))
	}
	if f.ipset.Has(setClusterIP, "10.96.9.9,tcp:80") || !f.ipset.Has(setClusterIP, "10.96.0.1,tcp:80") {
		t.Fatal("ipset entries not reconciled")
	}
}

func TestFailedSyncFallsBackToFull(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	// The node default itself refused (preflight passed, the kernel changed since):
	// nothing to fall back to.
	f.ipvs.Refuse("rr")
	bad := clusterIP("bad", "10.96.0.2", 80, v1.ProtocolTCP)
	if _, err := f.core.Sync(context.Background(), f.snap, f.set(bad.Name, bad, ep("10.1.0.2:80", 1))); err == nil || !strings.Contains(err.Error(), "scheduler rr") {
		t.Fatalf("kernel refusal must surface naming the scheduler: %v", err)
	}
	if !f.p.needFull {
		t.Fatal("a failed sync must fall back to a full sync")
	}
	f.ipvs.Refuse()
	f.sync(state.ChangeSet{})
	if f.vs(key("10.96.0.2:80", protoTCP)) == nil {
		t.Fatal("the full sync after the failure did not create the virtual server")
	}
}

// A scheduler whose module the kernel lacks: the Service is served with the node
// default and a warning, the sync succeeds, and later syncs do not retry the refused
// scheduler until a full sync (the module may have been installed since).
func TestKernelLackingSchedulerFallsBackToDefault(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t, proxierOptions{Scheduler: "wlc", Log: slog.New(slog.NewTextHandler(&logs, nil))})
	f.sync(state.ChangeSet{})
	f.ipvs.Refuse("sed")
	sp := clusterIP("sed", "10.96.0.2", 80, v1.ProtocolTCP)
	sp.Scheduler, sp.SchedulerFlags = "sed", nil
	if _, err := f.core.Sync(context.Background(), f.snap, f.set(sp.Name, sp, ep("10.1.0.2:80", 1))); err != nil {
		t.Fatalf("a scheduler the kernel lacks failed the sync: %v", err)
	}
	k := key("10.96.0.2:80", protoTCP)
	if s := f.vs(k); s == nil || s.SchedName != "wlc" {
		t.Fatalf("virtual server %+v, want one on the node default wlc", s)
	}
	if f.vs(key("198.51.100.0:20000", protoTCP)) != nil {
		t.Fatal("the probe virtual server was left behind")
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, `\"sed\"`) || !strings.Contains(l, "ns/sed:p") {
		t.Fatalf("want a warning naming the service and scheduler, log:\n%s", l)
	}
	f.ipvs.TakeWrites()
	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:80", 1), ep("10.1.0.3:80", 1)))
	if w := f.ipvs.TakeWrites(); len(w) != 1 || !strings.HasPrefix(w[0], "new-dest") {
		t.Fatalf("an endpoint added to the fallen-back Service wrote %v, want one new real server", w)
	}
	f.ipvs.Refuse()
	f.core.Invalidate()
	f.sync(state.ChangeSet{})
	if s := f.vs(k); s.SchedName != "sed" {
		t.Fatalf("after the module appeared and a full sync: scheduler %q, want sed", s.SchedName)
	}
}

func TestStatsCountKernelObjects(t *testing.T) {
	f := newFixture(t, proxierOptions{GracefulTimeout: hour})
	kernelObjects := func() int {
		n := 0
		svcs, _ := f.ipvs.GetServices()
		for _, s := range svcs {
			n += 1 + len(f.ipvs.Destinations(fakeipvs.KeyOf(s)))
		}
		return n
	}
	check := func(step string, c state.ChangeSet) {
		t.Helper()
		st, err := f.core.Sync(context.Background(), f.snap, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.Rules["ipvs"] != kernelObjects() {
			t.Fatalf("%s: stats say %d IPVS objects, the kernel has %d", step, st.Rules["ipvs"], kernelObjects())
		}
	}
	a := clusterIP("a", "10.96.0.1", 80, v1.ProtocolTCP)
	u := clusterIP("u", "10.96.0.2", 53, v1.ProtocolUDP)
	f.set(u.Name, u, ep("10.1.0.5:53", 1), ep("10.1.0.6:53", 1))
	check("create", f.set(a.Name, a, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)))
	f.ipvs.SetConns(fakeipvs.Key(key("10.96.0.1:80", protoTCP)), netip.MustParseAddrPort("10.1.0.1:80"), 1, 0)
	check("drain", f.set(a.Name, a, ep("10.1.0.2:80", 1)))
	check("udp delete", f.set(u.Name, u, ep("10.1.0.6:53", 1)))
	f.core.Invalidate()
	check("full", state.ChangeSet{})
	check("service delete", f.set(a.Name, nil))
}

func TestUnchangedSetEntriesAreNotRewrittenAndFilterSetOrdered(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("web", "10.96.0.1", 80, v1.ProtocolTCP)
	sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("198.18.0.1")}
	f.sync(f.set(sp.Name, sp, localEp("10.1.0.1:80", 1)))
	n := len(f.ipset.Restores())
	f.sync(f.set(sp.Name, sp, localEp("10.1.0.2:80", 1)))
	got := strings.Join(f.ipset.Restores()[n:], "")
	if strings.Contains(got, "KUBE-CLUSTER-IP") || strings.Contains(got, "KUBE-IPVS-IPS") {
		t.Fatalf("an endpoint change rewrote the Service's address entries:\n%s", got)
	}
	if !strings.Contains(got, "del KUBE-LOOP-BACK 10.1.0.1,tcp:80,10.1.0.1") || !strings.Contains(got, "add KUBE-LOOP-BACK 10.1.0.2,tcp:80,10.1.0.2") {
		t.Fatalf("endpoint entries not diffed:\n%s", got)
	}
	d := setDiff{
		Add: []setEntry{{setIPVSIPs, "10.0.0.1"}, {setLoadBalancer, "10.0.0.1,tcp:80"}},
		Del: []setEntry{{setLoadBalancer, "10.0.0.2,tcp:80"}, {setIPVSIPs, "10.0.0.2"}},
	}
	want := "del KUBE-IPVS-IPS 10.0.0.2\ndel KUBE-LOAD-BALANCER 10.0.0.2,tcp:80\nadd KUBE-LOAD-BALANCER 10.0.0.1,tcp:80\nadd KUBE-IPVS-IPS 10.0.0.1\n"
	if r := d.render(nil); r != want {
		t.Fatalf("restore order:\n%s\nwant:\n%s", r, want)
	}
}
