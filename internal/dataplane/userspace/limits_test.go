package userspace

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

func TestResolveLimitsDefaults(t *testing.T) {
	for _, c := range []struct {
		in     dataplane.RelayLimits
		nofile uint64
		want   limits
	}{
		{dataplane.RelayLimits{}, 20000, limits{5000, 625, DefaultIdleTimeout}},
		{dataplane.RelayLimits{}, 1 << 20, limits{262144, 32768, DefaultIdleTimeout}},
		{dataplane.RelayLimits{}, 100, limits{64, 64, DefaultIdleTimeout}},
		{dataplane.RelayLimits{}, 0, limits{fallbackMaxConns, fallbackMaxConns / 8, DefaultIdleTimeout}},
		{dataplane.RelayLimits{MaxConns: 10, MaxConnsPerClient: 3, IdleTimeout: time.Second}, 20000, limits{10, 3, time.Second}},
		{dataplane.RelayLimits{MaxConns: -1, MaxConnsPerClient: -1, IdleTimeout: -1}, 20000, limits{}},
		{dataplane.RelayLimits{MaxConns: -1}, 20000, limits{0, fallbackMaxConns / 8, DefaultIdleTimeout}},
	} {
		if got := resolveLimits(c.in, c.nofile); got != c.want {
			t.Errorf("resolveLimits(%+v, %d) = %+v, want %+v", c.in, c.nofile, got, c.want)
		}
	}
}

func TestClientKeyGroupsIPv6By64(t *testing.T) {
	a := clientKey(netip.MustParseAddr("2001:db8:1:2::1"))
	b := clientKey(netip.MustParseAddr("2001:db8:1:2:ffff::9"))
	c := clientKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("keys %v %v %v: want the first two equal (one /64), the third different", a, b, c)
	}
	if k := clientKey(netip.MustParseAddr("::ffff:10.0.0.1")); k != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("IPv4-mapped client keyed as %v", k)
	}
}

// capService starts a proxier with lim in front of one echo backend.
func capService(t *testing.T, lim dataplane.RelayLimits) (netip.AddrPort, *prometheus.Registry) {
	t.Helper()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("capped", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, reg := testProxierWith(t, nil, lim)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	return s.addr(), reg
}

func refusedTotal(t *testing.T, reg *prometheus.Registry, reason, proto string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kproxy_userspace_refused_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["reason"] == reason && labels["protocol"] == proto {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestPerClientCapRefusesOnlyThatClient(t *testing.T) {
	t.Parallel()
	addr, reg := capService(t, dataplane.RelayLimits{MaxConns: 100, MaxConnsPerClient: 5})
	greedy, other := randLoopback(), randLoopback()
	var held []*conn
	for i := 0; i < 5; i++ {
		held = append(held, dialName(t, greedy, addr))
	}
	if err := refused(greedy, addr); err != nil {
		t.Fatalf("6th connection of a client capped at 5: %v", err)
	}
	if got := names(t, other, addr, 3); strings.Join(got, ",") != "A,A,A" {
		t.Fatalf("another client while the first is at its cap got %v", got)
	}
	if v := refusedTotal(t, reg, "max_conns_per_client", "tcp"); v != 1 {
		t.Fatalf("refused{reason=max_conns_per_client} = %v, want 1", v)
	}
	eventually(t, "open connections to be the 5 held", func() bool {
		return testutil.ToFloat64(mustCollector(t, reg, "kproxy_userspace_open_connections")) == 5
	})
	// A slot given back is usable again.
	held[0].Close()
	eventually(t, "the capped client to connect again", func() bool {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: greedy.AsSlice()}}
		c, err := d.Dial("tcp", addr.String())
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 2)
		_, err = io.ReadFull(c, b)
		return err == nil && string(b) == "A\n"
	})
	for _, c := range held[1:] {
		c.Close()
	}
}

func TestGlobalCapRefusesEveryClient(t *testing.T) {
	t.Parallel()
	addr, reg := capService(t, dataplane.RelayLimits{MaxConns: 3, MaxConnsPerClient: -1})
	for i := 0; i < 3; i++ {
		defer dialName(t, randLoopback(), addr).Close()
	}
	if err := refused(randLoopback(), addr); err != nil {
		t.Fatalf("4th connection over a global cap of 3: %v", err)
	}
	if v := refusedTotal(t, reg, "max_conns", "tcp"); v != 1 {
		t.Fatalf("refused{reason=max_conns} = %v, want 1", v)
	}
}

func TestIdleTimeoutClosesIdleConnections(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	addr, reg := capService(t, dataplane.RelayLimits{IdleTimeout: idle})
	quiet := dialName(t, netip.Addr{}, addr)
	defer quiet.Close()
	busy := dialName(t, netip.Addr{}, addr)
	defer busy.Close()
	start := time.Now()
	// The busy connection talks every idle/5 for 2.5 idle periods and stays open.
	for time.Since(start) < 5*idle/2 {
		if got := busy.ask(t); got != "A" {
			t.Fatalf("busy connection answered %q", got)
		}
		time.Sleep(idle / 5)
	}
	quiet.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := quiet.r.ReadString('\n'); err == nil {
		t.Fatal("idle connection still open after 2.5 idle timeouts")
	}
	if got := busy.ask(t); got != "A" {
		t.Fatalf("busy connection after the idle one closed answered %q", got)
	}
	if v := testutil.ToFloat64(mustCollector(t, reg, "kproxy_userspace_idle_timeouts_total")); v != 1 {
		t.Fatalf("idle timeouts = %v, want 1", v)
	}
}

// TestSequentialConnectionsNoResets makes a few thousand short connections one
// after the other through the relay (loopback only): none may fail. Each upstream
// dial used to bind a source port first, and ports in TIME_WAIT made it fail.
func TestSequentialConnectionsNoResets(t *testing.T) {
	t.Parallel()
	target := startGreeter(t)
	ip := randLoopback()
	s := newSvc("seq", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), testBackend{addr: target})
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	const n = 3000
	failed := 0
	var first error
	one := make([]byte, 1)
	for i := 0; i < n; i++ {
		if err := shortExchange(s.addr(), one); err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sequential connections failed, first: %v", failed, n, first)
	}
}

// shortExchange connects, reads the server's one byte and its close.
func shortExchange(addr netip.AddrPort, one []byte) error {
	c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, one); err != nil {
		return err
	}
	if _, err := c.Read(one); err != io.EOF {
		return fmt.Errorf("want EOF after the greeting, got %v", err)
	}
	return nil
}

func mustCollector(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name}, func() float64 { return v })
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}

func TestPerClientCapCountsUDPFlows(t *testing.T) {
	t.Parallel()
	u := startUDPBackend(t, "U")
	ip := randLoopback()
	s := newSvc("dns", v1.ProtocolUDP, ip, freePort(t, "udp", ip), u)
	p, reg := testProxierWith(t, nil, dataplane.RelayLimits{MaxConnsPerClient: 1})
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	client := randLoopback()
	ask := func(from netip.Addr) error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(s.addr()))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("q")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) != "U:q" {
			return fmt.Errorf("answer %q", buf[:n])
		}
		return err
	}
	if err := ask(client); err != nil {
		t.Fatalf("first flow: %v", err)
	}
	// A second source port of the same client is a second flow: over its cap.
	if err := ask(client); err == nil {
		t.Fatal("second flow of a client capped at 1 was answered")
	}
	if err := ask(randLoopback()); err != nil {
		t.Fatalf("another client's flow: %v", err)
	}
	if v := refusedTotal(t, reg, "max_conns_per_client", "udp"); v < 1 {
		t.Fatalf("refused{reason=max_conns_per_client,protocol=udp} = %v, want at least 1", v)
	}
}
