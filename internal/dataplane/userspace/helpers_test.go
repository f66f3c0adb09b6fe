package userspace

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// randLoopback returns a random 127.x.y.z address, so that tests of parallel
// packages (and engineers) do not collide on ports.
func randLoopback() netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
}

// freePort returns a port that is free on a for proto now.
func freePort(t testing.TB, proto string, a netip.Addr) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testBackend answers each connection with its name and a newline, then echoes its
// name for every line it receives until the client closes.
type testBackend struct {
	name string
	addr netip.AddrPort
}

func startTCPBackend(t testing.TB, name string) testBackend {
	t.Helper()
	return startTCPBackendOn(t, randLoopback(), name)
}

// startTCPBackendOn is startTCPBackend on address a (::1 for IPv6).
func startTCPBackendOn(t testing.TB, a netip.Addr, name string) testBackend {
	t.Helper()
	addr := serveTCPOn(t, a, func(c *net.TCPConn) {
		defer c.Close()
		fmt.Fprintln(c, name)
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			fmt.Fprintln(c, name)
		}
	})
	return testBackend{name: name, addr: addr}
}

// serveTCP listens on a random loopback address until the test ends and runs
// handle, in a goroutine of its own, for every connection it accepts.
func serveTCP(t testing.TB, handle func(c *net.TCPConn)) netip.AddrPort {
	t.Helper()
	return serveTCPOn(t, randLoopback(), handle)
}

// serveTCPOn is serveTCP on address a.
func serveTCPOn(t testing.TB, a netip.Addr, handle func(c *net.TCPConn)) netip.AddrPort {
	t.Helper()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// startUDPBackend answers each datagram with "name:payload".
func startUDPBackend(t testing.TB, name string) testBackend {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(randLoopback(), 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort([]byte(name+":"+string(buf[:n])), from)
		}
	}()
	return testBackend{name: name, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// conn is a client connection through the proxy that knows which backend answered.
type conn struct {
	net.Conn
	r    *bufio.Reader
	name string
}

// dialName connects to addr (from local when valid) and reads the backend's name.
func dialName(t testing.TB, local netip.Addr, addr netip.AddrPort) *conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("reading backend name through %s: %v", addr, err)
	}
	return &conn{Conn: c, r: r, name: strings.TrimSpace(line)}
}

// ask sends a line and returns the backend's answer: the connection still works.
func (c *conn) ask(t testing.TB) string {
	t.Helper()
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		t.Fatalf("write: %v", err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(line)
}

// names dials n times and returns the backend names in order, closing each.
func names(t testing.TB, local netip.Addr, addr netip.AddrPort, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		c := dialName(t, local, addr)
		out = append(out, c.name)
		c.Close()
	}
	return out
}

// svc describes a test ServicePort and its endpoints.
type svc struct {
	sp  *state.ServicePort
	eps []state.Endpoint
}

func newSvc(name string, proto v1.Protocol, ip netip.Addr, port int, backends ...testBackend) *svc {
	s := &svc{sp: &state.ServicePort{
		Name:       state.ServicePortName{Namespace: "default", Name: name, Port: "p", Protocol: proto},
		Type:       v1.ServiceTypeClusterIP,
		Protocol:   proto,
		ClusterIPs: []netip.Addr{ip},
		Port:       int32(port),
	}}
	for _, b := range backends {
		s.eps = append(s.eps, ep(b, 1))
	}
	return s
}

func ep(b testBackend, weight int) state.Endpoint {
	return state.Endpoint{IP: b.addr.Addr(), Port: int32(b.addr.Port()), Ready: true, Serving: true, Weight: weight}
}

func (s *svc) addr() netip.AddrPort {
	return netip.AddrPortFrom(s.sp.ClusterIPs[0], uint16(s.sp.Port))
}

// snap builds a snapshot of the given ServicePorts.
func snap(node state.NodeInfo, svcs ...*svc) *state.Snapshot {
	s := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: node}
	for _, x := range svcs {
		s.ServiceMap[x.sp.Name] = x.sp
		s.EndpointMap[x.sp.Name] = x.eps
	}
	return s
}

// allChanged is a ChangeSet naming every ServicePort of the snapshots given.
func allChanged(snaps ...*state.Snapshot) state.ChangeSet {
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for _, s := range snaps {
		for n := range s.ServiceMap {
			cs.Ports[n] = struct{}{}
		}
	}
	return cs
}

// testProxier builds a Proxier on a private registry and cleans it up with the test.
func testProxier(t testing.TB, cfg *kpconfig.KubeProxyConfiguration) (*Proxier, *prometheus.Registry) {
	t.Helper()
	return testProxierWith(t, cfg, dataplane.RelayLimits{})
}

// testProxierWith is testProxier with relay limits. Drain does not set the
// namespace's tcp_migrate_req (tests share the host's namespace); the handoff
// test, in a namespace of its own, restores it.
func testProxierWith(t testing.TB, cfg *kpconfig.KubeProxyConfiguration, lim dataplane.RelayLimits) (*Proxier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg == nil {
		cfg = &kpconfig.KubeProxyConfiguration{}
	}
	p, err := New(dataplane.Options{Config: cfg, Registerer: reg, Relay: lim})
	if err != nil {
		t.Fatal(err)
	}
	p.enableMigrate = func() (bool, error) { return false, nil }
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Cleanup(ctx)
	})
	return p, reg
}

// mustSync syncs and fails the test on error.
func mustSync(t testing.TB, p *Proxier, s *state.Snapshot, cs state.ChangeSet) dataplane.SyncStats {
	t.Helper()
	st, err := coreFor(p).Sync(context.Background(), s, cs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return st
}

// eventually retries cond until it holds or 5 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counts tallies names.
func counts(names []string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		m[n]++
	}
	return m
}
