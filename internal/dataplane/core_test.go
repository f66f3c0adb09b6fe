package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
)

// recorder is a Programmer that records every request and fails on demand.
type recorder struct {
	reqs    []*Request
	fail    error
	damaged bool
	checks  int
}

func (r *recorder) Apply(_ context.Context, req *Request) (Applied, error) {
	r.reqs = append(r.reqs, req)
	// Read every port's categorisation as a mode would.
	for n := range req.Changed {
		if req.Snapshot.ServiceMap[n] != nil {
			req.Endpoints(n)
		}
	}
	return Applied{Rules: map[string]int{"t": len(req.Snapshot.ServiceMap)}}, r.fail
}

func (r *recorder) Cleanup(context.Context) error { return nil }

func (r *recorder) Damaged(context.Context) (bool, error) {
	r.checks++
	return r.damaged, nil
}

func (r *recorder) last() *Request { return r.reqs[len(r.reqs)-1] }

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_000_000, 0)} }
func portName(name string, p v1.Protocol) state.ServicePortName {
	return state.ServicePortName{Namespace: "ns", Name: name, Port: "p", Protocol: p}
}

// snapBuilder makes snapshots of ClusterIP ports.
type snapBuilder struct {
	s *state.Snapshot
}

func newSnap(zone string) *snapBuilder {
	return &snapBuilder{s: &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: state.NodeInfo{Name: "n1", Zone: zone}}}
}

func (b *snapBuilder) port(name string, proto v1.Protocol, vip string, eps ...state.Endpoint) *snapBuilder {
	n := portName(name, proto)
	b.s.ServiceMap[n] = &state.ServicePort{Name: n, Type: v1.ServiceTypeClusterIP, Protocol: proto,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(vip)}, Port: 53}
	b.s.EndpointMap[n] = eps
	return b
}

func (b *snapBuilder) with(name string, proto v1.Protocol, f func(*state.ServicePort)) *snapBuilder {
	f(b.s.ServiceMap[portName(name, proto)])
	return b
}

func endpoint(addr string) state.Endpoint {
	ap := netip.MustParseAddrPort(addr)
	return state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true, Weight: 1}
}

func changes(names ...state.ServicePortName) state.ChangeSet {
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for _, n := range names {
		cs.Ports[n] = struct{}{}
	}
	return cs
}

func newTestCore(r *recorder, c *clock, ct conntrack.Deleter) *Core {
	return NewCore(r, CoreOptions{Now: c.now, Conntrack: ct, CheckInterval: 30 * time.Second})
}

func mustSync(t *testing.T, c *Core, snap *state.Snapshot, cs state.ChangeSet) SyncStats {
	t.Helper()
	st, err := c.Sync(context.Background(), snap, cs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return st
}

// An idle node applies nothing for an hour: every periodic run (syncPeriod) only
// checks the kernel; the forced full sync comes after FullSyncPeriod, as in
// kube-proxy.
func TestIdleNodeSyncsOnceAnHour(t *testing.T) {
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	snap := newSnap("").port("web", v1.ProtocolTCP, "10.96.0.1", endpoint("10.1.0.1:80")).s
	if st := mustSync(t, c, snap, changes(portName("web", v1.ProtocolTCP))); !st.Full || len(r.reqs) != 1 {
		t.Fatalf("first sync: full=%v applies=%d, want one full apply", st.Full, len(r.reqs))
	}
	for elapsed := 30 * time.Second; elapsed < time.Hour; elapsed += 30 * time.Second {
		clk.advance(30 * time.Second)
		if st := mustSync(t, c, snap, state.ChangeSet{}); !st.Skipped {
			t.Fatalf("after %v idle: a sync happened (%+v)", elapsed, st)
		}
	}
	if len(r.reqs) != 1 {
		t.Fatalf("%d applies during the idle hour, want none after the first", len(r.reqs)-1)
	}
	if r.checks < 100 {
		t.Fatalf("the kernel was checked %d times in an hour, want every 30s", r.checks)
	}
	clk.advance(30 * time.Second)
	if st := mustSync(t, c, snap, state.ChangeSet{}); st.Skipped || !st.Full {
		t.Fatalf("after an hour: %+v, want the forced full sync", st)
	}
}

func TestDamageForcesAFullSyncWithinTheCheckInterval(t *testing.T) {
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	web := portName("web", v1.ProtocolTCP)
	snap := newSnap("").port("web", v1.ProtocolTCP, "10.96.0.1", endpoint("10.1.0.1:80")).s
	mustSync(t, c, snap, changes(web))
	clk.advance(10 * time.Second)
	checks := r.checks
	if st := mustSync(t, c, snap, changes(web)); st.Full || r.checks != checks {
		t.Fatalf("a change within the check interval: full=%v, %d checks; want a partial sync, no check", st.Full, r.checks-checks)
	}
	r.damaged = true
	clk.advance(30 * time.Second)
	if st := mustSync(t, c, snap, state.ChangeSet{}); !st.Full {
		t.Fatalf("damaged rules: %+v, want a full sync", st)
	}
}

func TestFailedSyncIsRetriedFullWithItsChanges(t *testing.T) {
	r, clk := &recorder{}, newClock()
	ct := &fakeconntrack.Table{}
	c := newTestCore(r, clk, ct)
	dns := portName("dns", v1.ProtocolUDP)
	mustSync(t, c, newSnap("").port("dns", v1.ProtocolUDP, "10.96.0.10", endpoint("10.1.0.1:53"), endpoint("10.1.0.2:53")).s, changes(dns))
	ct.ForgetCalls()
	r.fail = errors.New("kernel said no")
	next := newSnap("").port("dns", v1.ProtocolUDP, "10.96.0.10", endpoint("10.1.0.2:53")).s
	if _, err := c.Sync(context.Background(), next, changes(dns)); err == nil {
		t.Fatal("want the apply error")
	}
	if len(ct.Calls()) != 0 {
		t.Fatal("conntrack cleaned after a failed sync: flows could still be NATed to the old endpoint")
	}
	r.fail = nil
	st := mustSync(t, c, next, state.ChangeSet{})
	if !st.Full || !r.last().Full {
		t.Fatal("the sync after a failure must be full")
	}
	if _, ok := r.last().Changed[dns]; !ok {
		t.Fatal("the retried sync lost the failed sync's change")
	}
	if got := ct.Filters(); len(got) != 1 || got[0].Endpoint.String() != "10.1.0.1:53" {
		t.Fatalf("conntrack filters %v, want the removed endpoint 10.1.0.1:53", got)
	}
}

func TestPartialErrorIsRetriedWithoutChanges(t *testing.T) {
	r, clk := &recorder{fail: &PartialError{Errs: []error{errors.New("service ns/x: bad")}}}, newClock()
	c := newTestCore(r, clk, nil)
	snap := newSnap("").port("web", v1.ProtocolTCP, "10.96.0.1").s
	if _, err := c.Sync(context.Background(), snap, changes(portName("web", v1.ProtocolTCP))); !IsPartial(err) {
		t.Fatalf("err = %v, want the PartialError", err)
	}
	r.fail = nil
	if st := mustSync(t, c, snap, state.ChangeSet{}); st.Skipped {
		t.Fatal("after a partial failure the next sync was skipped: the failed Service is never retried")
	}
	if st := mustSync(t, c, snap, state.ChangeSet{}); !st.Skipped {
		t.Fatal("after the retry succeeded the idle sync must be skipped again")
	}
}

// A Node change re-categorises every port: the zone label decides which endpoints
// PreferClose hints keep (bug: ipvs kept the old zone's endpoints).
func TestNodeChangeMarksEveryPortChanged(t *testing.T) {
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	a, b := endpoint("10.1.0.1:80"), endpoint("10.1.0.2:80")
	a.Hints, b.Hints = &state.Hints{Zones: []string{"z1"}}, &state.Hints{Zones: []string{"z2"}}
	build := func(zone string) *state.Snapshot {
		return newSnap(zone).port("web", v1.ProtocolTCP, "10.96.0.1", a, b).port("other", v1.ProtocolTCP, "10.96.0.2", a).s
	}
	mustSync(t, c, build("z1"), changes(portName("web", v1.ProtocolTCP), portName("other", v1.ProtocolTCP)))
	if got := r.last().Endpoints(portName("web", v1.ProtocolTCP)).Cluster; len(got) != 1 || got[0].String() != a.String() {
		t.Fatalf("zone z1: cluster endpoints %v, want only %s", got, a)
	}
	cs := state.ChangeSet{NodeChanged: true}
	st := mustSync(t, c, build("z2"), cs)
	req := r.last()
	if st.Skipped || !req.NodeChanged || len(req.Changed) != 2 {
		t.Fatalf("node change: skipped=%v nodeChanged=%v changed=%d, want both ports", st.Skipped, req.NodeChanged, len(req.Changed))
	}
	if got := req.Endpoints(portName("web", v1.ProtocolTCP)).Cluster; len(got) != 1 || got[0].String() != b.String() {
		t.Fatalf("zone z2: cluster endpoints %v, want only %s", got, b)
	}
}

func filterStrings(fs []conntrack.Filter) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.String())
	}
	sort.Strings(out)
	return out
}

func TestConntrackCleanup(t *testing.T) {
	udp, sctp, tcp := v1.ProtocolUDP, v1.ProtocolSCTP, v1.ProtocolTCP
	cases := []struct {
		name        string
		before      *state.Snapshot // nil: first sync
		after       *state.Snapshot
		changed     []state.ServicePortName
		wantFilters []string
	}{{
		name:        "first sync forgets flows recorded before any rule",
		after:       newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53")).s,
		changed:     []state.ServicePortName{portName("dns", udp)},
		wantFilters: []string{"proto 17 dst 10.96.0.10:53 reply-src *"},
	}, {
		name:        "UDP endpoint removed",
		before:      newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53"), endpoint("10.1.0.2:53")).s,
		after:       newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.2:53")).s,
		changed:     []state.ServicePortName{portName("dns", udp)},
		wantFilters: []string{"proto 17 dst 10.96.0.10:53 reply-src 10.1.0.1:53"},
	}, {
		name:        "UDP port gains its first endpoint",
		before:      newSnap("").port("dns", udp, "10.96.0.10").s,
		after:       newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53")).s,
		changed:     []state.ServicePortName{portName("dns", udp)},
		wantFilters: []string{"proto 17 dst 10.96.0.10:53 reply-src *"},
	}, {
		name:        "SCTP endpoint replaced",
		before:      newSnap("").port("s", sctp, "10.96.0.11", endpoint("10.1.0.1:53")).s,
		after:       newSnap("").port("s", sctp, "10.96.0.11", endpoint("10.1.0.3:53")).s,
		changed:     []state.ServicePortName{portName("s", sctp)},
		wantFilters: []string{"proto 132 dst 10.96.0.11:53 reply-src 10.1.0.1:53"},
	}, {
		name:        "UDP Service deleted",
		before:      newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53")).s,
		after:       newSnap("").s,
		changed:     []state.ServicePortName{portName("dns", udp)},
		wantFilters: []string{"proto 17 dst 10.96.0.10:53 reply-src *"},
	}, {
		name:    "TCP is left to the clients",
		before:  newSnap("").port("web", tcp, "10.96.0.1", endpoint("10.1.0.1:80")).s,
		after:   newSnap("").port("web", tcp, "10.96.0.1", endpoint("10.1.0.2:80")).s,
		changed: []state.ServicePortName{portName("web", tcp)},
	}, {
		name:    "unchanged UDP port is not looked at",
		before:  newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53")).port("web", tcp, "10.96.0.1").s,
		after:   newSnap("").port("dns", udp, "10.96.0.10", endpoint("10.1.0.1:53")).port("web", tcp, "10.96.0.1", endpoint("10.1.0.2:80")).s,
		changed: []state.ServicePortName{portName("web", tcp)},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := &fakeconntrack.Table{}
			c := newTestCore(&recorder{}, newClock(), ct)
			if tc.before != nil {
				var all []state.ServicePortName
				for n := range tc.before.ServiceMap {
					all = append(all, n)
				}
				mustSync(t, c, tc.before, changes(all...))
				ct.ForgetCalls()
			}
			mustSync(t, c, tc.after, changes(tc.changed...))
			got, want := filterStrings(ct.Filters()), tc.wantFilters
			sort.Strings(want)
			if len(got) != len(want) {
				t.Fatalf("filters %v, want %v", got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("filters %v, want %v", got, want)
				}
			}
		})
	}
}

func TestNoLocalEndpointsCounted(t *testing.T) {
	c := newTestCore(&recorder{}, newClock(), nil)
	remote := endpoint("10.1.0.1:80")
	local := endpoint("10.1.0.2:80")
	local.IsLocal = true
	b := newSnap("").
		port("itp", v1.ProtocolTCP, "10.96.0.1", remote).with("itp", v1.ProtocolTCP, func(sp *state.ServicePort) { sp.InternalPolicyLocal = true }).
		port("etp", v1.ProtocolTCP, "10.96.0.2", remote).with("etp", v1.ProtocolTCP, func(sp *state.ServicePort) {
		sp.ExternalPolicyLocal, sp.NodePort = true, 30002
	}).
		port("etp-local", v1.ProtocolTCP, "10.96.0.3", local).with("etp-local", v1.ProtocolTCP, func(sp *state.ServicePort) {
		sp.ExternalPolicyLocal, sp.NodePort = true, 30003
	}).
		port("itp-none", v1.ProtocolTCP, "10.96.0.4").with("itp-none", v1.ProtocolTCP, func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })
	var all []state.ServicePortName
	for n := range b.s.ServiceMap {
		all = append(all, n)
	}
	st := mustSync(t, c, b.s, changes(all...))
	if st.NoLocalEndpoints["internal"] != 1 || st.NoLocalEndpoints["external"] != 1 {
		t.Fatalf("no-local counts %v, want internal=1 (itp) external=1 (etp)", st.NoLocalEndpoints)
	}
	// The eTP Service gains a local endpoint: a partial sync updates the count.
	next := newSnap("")
	for n, sp := range b.s.ServiceMap {
		next.s.ServiceMap[n] = sp
		next.s.EndpointMap[n] = b.s.EndpointMap[n]
	}
	next.s.EndpointMap[portName("etp", v1.ProtocolTCP)] = []state.Endpoint{local}
	st = mustSync(t, c, next.s, changes(portName("etp", v1.ProtocolTCP)))
	if st.Full || st.NoLocalEndpoints["external"] != 0 || st.NoLocalEndpoints["internal"] != 1 {
		t.Fatalf("after a local endpoint appeared: full=%v counts %v", st.Full, st.NoLocalEndpoints)
	}
}

func TestAsReachesTheModeThroughTheCore(t *testing.T) {
	c := NewCore(&recorder{}, CoreOptions{})
	if _, ok := As[Checker](c); !ok {
		t.Fatal("As did not find the mode's Checker behind the core")
	}
	if _, ok := As[Lister](c); ok {
		t.Fatal("As found a Lister the mode does not implement")
	}
}
