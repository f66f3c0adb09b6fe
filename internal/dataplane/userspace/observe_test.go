package userspace

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// metricValue finds one series in the registry; ok is false when it is absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name, service, endpoint string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["service"] != service || l["endpoint"] != endpoint {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue(), true
			}
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func TestBackendMetrics(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("m", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b)
	p, reg := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	names(t, netip.Addr{}, s.addr(), 2) // A, B, closed
	held := dialName(t, netip.Addr{}, s.addr())
	defer held.Close()
	const svc = "default/m:p"
	epA, epB := a.addr.String(), b.addr.String()
	eventually(t, "B's closed connection to leave the gauge", func() bool {
		v, _ := metricValue(t, reg, "kproxy_backend_active_connections", svc, epB)
		return v == 0
	})
	if v, _ := metricValue(t, reg, "kproxy_backend_connections_total", svc, epA); v != 2 {
		t.Fatalf("connections_total for A = %v, want 2", v)
	}
	if v, _ := metricValue(t, reg, "kproxy_backend_connections_total", svc, epB); v != 1 {
		t.Fatalf("connections_total for B = %v, want 1", v)
	}
	if v, _ := metricValue(t, reg, "kproxy_backend_active_connections", svc, epA); v != 1 {
		t.Fatalf("active_connections for A = %v, want 1 (the held one)", v)
	}
	// Removing B deletes its series.
	s2 := newSvc("m", v1.ProtocolTCP, ip, int(s.sp.Port), a)
	sn2 := snap(state.NodeInfo{}, s2)
	mustSync(t, p, sn2, allChanged(sn2))
	if _, ok := metricValue(t, reg, "kproxy_backend_connections_total", svc, epB); ok {
		t.Fatal("series of the removed endpoint B still exported")
	}
	if _, ok := metricValue(t, reg, "kproxy_backend_connections_total", svc, epA); !ok {
		t.Fatal("series of the remaining endpoint A is gone")
	}
}

// TestBackendMetricsAppearWithFirstConnection: an endpoint's series exist only
// once it had a connection, and a connection that starts after its endpoint
// left (a relay still holding the old config) does not bring them back.
func TestBackendMetricsAppearWithFirstConnection(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	svc := &service{name: state.ServicePortName{Namespace: "ns", Name: "lazy", Port: "p"}}
	m.syncService(svc, []netip.AddrPort{a, b})
	const name = "ns/lazy:p"
	if _, ok := metricValue(t, reg, "kproxy_backend_connections_total", name, a.String()); ok {
		t.Fatal("series exported for an endpoint without a connection")
	}
	svc.metric(a).opened()
	if v, _ := metricValue(t, reg, "kproxy_backend_connections_total", name, a.String()); v != 1 {
		t.Fatalf("connections_total for a = %v after its first connection, want 1", v)
	}
	if v, _ := metricValue(t, reg, "kproxy_backend_active_connections", name, a.String()); v != 1 {
		t.Fatalf("active_connections for a = %v, want 1", v)
	}
	svc.metric(a).closed()
	if v, _ := metricValue(t, reg, "kproxy_backend_active_connections", name, a.String()); v != 0 {
		t.Fatalf("active_connections for a = %v after the close, want 0", v)
	}
	heldA, heldB := svc.metric(a), svc.metric(b)
	m.syncService(svc, nil)
	if _, ok := metricValue(t, reg, "kproxy_backend_connections_total", name, a.String()); ok {
		t.Fatal("series of the removed endpoint a still exported")
	}
	heldA.opened()
	heldB.opened()
	for _, ep := range []netip.AddrPort{a, b} {
		if _, ok := metricValue(t, reg, "kproxy_backend_connections_total", name, ep.String()); ok {
			t.Fatalf("a connection after %s left brought its series back", ep)
		}
	}
}

func TestListShowsVirtualServicesAndCounters(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("list", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	s.eps = []state.Endpoint{ep(a, 2), ep(b, 1)}
	s.sp.Scheduler, s.sp.AffinityTimeout = "wrr", 30*time.Second
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c := dialName(t, netip.Addr{}, s.addr())
	c.ask(t)
	c.Close()
	held := dialName(t, randLoopback(), s.addr())
	defer held.Close()
	// Bytes are counted as they are spliced, so wait for the closed connection's
	// relay to end too.
	eventually(t, "the closed connection's bytes to be counted and its relay to end", func() bool {
		vss, _ := p.List(t.Context())
		if len(vss) != 1 || vss[0].Stats.InBytes != 5 { // "ping\n"
			return false
		}
		var active int64
		for _, rs := range vss[0].RealServers {
			active += rs.ActiveConn
		}
		return active == 1
	})
	vss, _ := p.List(t.Context())
	vs := vss[0]
	if vs.Service != "default/list:p" || vs.Protocol != "TCP" || vs.Address != s.addr().String() ||
		vs.Scheduler != "wrr" || vs.PersistentSeconds != 30 {
		t.Fatalf("virtual service = %+v", vs)
	}
	if len(vs.RealServers) != 2 {
		t.Fatalf("real servers = %+v, want 2", vs.RealServers)
	}
	byAddr := map[string]int{}
	for i, rs := range vs.RealServers {
		byAddr[rs.Address] = i
	}
	ra, rb := vs.RealServers[byAddr[a.addr.String()]], vs.RealServers[byAddr[b.addr.String()]]
	if ra.Weight != 2 || rb.Weight != 1 || ra.Forward != "Masq" {
		t.Fatalf("weights A=%d B=%d forward %q, want 2, 1, Masq", ra.Weight, rb.Weight, ra.Forward)
	}
	if ra.Stats.Conns+rb.Stats.Conns != 2 || vs.Stats.Conns != 2 || ra.ActiveConn+rb.ActiveConn != 1 {
		t.Fatalf("A %+v / %+v, B %+v / %+v: want 2 connections, 1 active", ra, *ra.Stats, rb, *rb.Stats)
	}
	// "A\n" on connect plus "A\n" for the ping, and the held connection's greeting is
	// still in flight through an open splice round, so at least 4 bytes back.
	if vs.Stats.OutBytes < 4 {
		t.Fatalf("OutBytes = %d, want at least 4", vs.Stats.OutBytes)
	}
}

func TestRatesFromCountersOverTime(t *testing.T) {
	var c counters
	t0 := time.Unix(1000, 0)
	c.estimate(t0)
	if c.est.Load() != nil {
		t.Fatal("a backend without traffic got rate state")
	}
	if st := c.snapshot(); st.CPS != 0 || st.Conns != 0 {
		t.Fatalf("no traffic: %+v", st)
	}
	c.conns.Add(10)
	c.inBytes.Add(2000)
	c.outBytes.Add(8000)
	c.estimate(t0.Add(2 * time.Second))
	st := c.snapshot()
	if st.CPS != 5 || st.InBPS != 1000 || st.OutBPS != 4000 {
		t.Fatalf("rates = %v cps %v in %v out, want 5, 1000, 4000", st.CPS, st.InBPS, st.OutBPS)
	}
	c.estimate(t0.Add(4 * time.Second))
	if st := c.snapshot(); st.CPS != 0 || st.Conns != 10 {
		t.Fatalf("idle interval: cps %v conns %d, want 0 and 10", st.CPS, st.Conns)
	}
}

// TestMetricsSyncSweepsGoneEndpoints: series follow the endpoint set through
// swaps of equal size and duplicates, which the sweep must not mistake for
// "nothing gone".
func TestMetricsSyncSweepsGoneEndpoints(t *testing.T) {
	t.Parallel()
	a, b, c := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.3:80")
	svc := &service{}
	var m *metrics
	for i, step := range []struct{ reach, want []netip.AddrPort }{
		{[]netip.AddrPort{a, b}, []netip.AddrPort{a, b}},
		{[]netip.AddrPort{a, c}, []netip.AddrPort{a, c}},    // same size, one swapped
		{[]netip.AddrPort{a, a, c}, []netip.AddrPort{a, c}}, // a duplicate
		{[]netip.AddrPort{b, b}, []netip.AddrPort{b}},       // duplicates hide two gone
		{nil, nil},
	} {
		held := svc.metric(a)
		m.syncService(svc, step.reach)
		got := metricAddrs(svc)
		if !slices.Equal(got, step.want) {
			t.Fatalf("step %d: series for %v, want %v", i, got, step.want)
		}
		if held != nil && slices.Contains(step.want, a) && svc.metric(a) != held {
			t.Fatalf("step %d: the series of a staying endpoint was replaced", i)
		}
	}
	// Random lists, mostly sorted (the merge), sometimes not (the sweep).
	rng := rand.New(rand.NewPCG(5, 6))
	for step := 0; step < 500; step++ {
		var reach []netip.AddrPort
		for k := range 20 {
			if rng.IntN(3) == 0 {
				reach = append(reach, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(k)}), 80))
			}
		}
		if rng.IntN(5) == 0 && len(reach) > 1 {
			reach = append(reach, reach[0]) // a repeat, out of order
		}
		before := map[netip.AddrPort]*backendMetric{}
		for _, bm := range svc.metrics {
			before[bm.addr] = bm
		}
		m.syncService(svc, reach)
		want := slices.Compact(slices.SortedFunc(slices.Values(reach), netip.AddrPort.Compare))
		got := metricAddrs(svc)
		if !slices.Equal(got, want) {
			t.Fatalf("random step %d: series for %v, want %v", step, got, want)
		}
		for a, bm := range before {
			if svc.metric(a) != nil && svc.metric(a) != bm {
				t.Fatalf("random step %d: the series of %s, which stayed, was replaced", step, a)
			}
		}
	}
}

// metricAddrs lists the endpoints svc has series for, checking their order.
func metricAddrs(svc *service) []netip.AddrPort {
	var out []netip.AddrPort
	for _, bm := range svc.metrics {
		out = append(out, bm.addr)
	}
	if !slices.IsSortedFunc(out, netip.AddrPort.Compare) {
		panic("svc.metrics out of order")
	}
	return out
}
