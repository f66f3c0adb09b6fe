package userspace

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/state"
)

// The tests here check that userspace mode answers as kube-proxy does where the
// kernel modes decide by client (externalTrafficPolicy Local) or refuse (no
// endpoints). Every client is on loopback, so outsideProxier stops counting
// loopback sources as the node's: a client is then in the cluster only by its
// address (podNet, or nodeIP as a host address).

// clientNets are the addresses the short-circuit tests use as client sources.
type clientNets struct {
	pod, node, outside netip.Addr
	cidr               string
}

func newClientNets() clientNets {
	for {
		n := clientNets{pod: randLoopback(), node: randLoopback(), outside: randLoopback()}
		b := n.pod.As4()
		pod := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, b[1], 0, 0}), 16)
		if !pod.Contains(n.node) && !pod.Contains(n.outside) && n.node != n.outside {
			n.cidr = pod.String()
			return n
		}
	}
}

// outsideProxier is a testProxier whose host has only the given address (the
// node's) and on which loopback sources are not the node's by themselves.
func outsideProxier(t testing.TB, cfg *kpconfig.KubeProxyConfiguration, host ...netip.Addr) *Proxier {
	t.Helper()
	p, _ := testProxier(t, cfg)
	p.classify.loopback = false
	p.localAddrs = func() ([]netip.Addr, error) { return host, nil }
	return p
}

// etpLocal is a Service with an externalIP, externalTrafficPolicy Local and the
// given endpoints; local ones are marked IsLocal.
func etpLocal(t testing.TB, proto v1.Protocol, local, remote []testBackend) (*svc, netip.AddrPort) {
	t.Helper()
	ip, ext := randLoopback(), randLoopback()
	p := "tcp"
	if proto == v1.ProtocolUDP {
		p = "udp"
	}
	s := newSvc("etp", proto, ip, freePort(t, p, ip))
	s.sp.ExternalIPs = []netip.Addr{ext}
	s.sp.ExternalPolicyLocal = true
	for _, b := range local {
		e := ep(b, 1)
		e.IsLocal = true
		s.eps = append(s.eps, e)
	}
	for _, b := range remote {
		s.eps = append(s.eps, ep(b, 1))
	}
	return s, netip.AddrPortFrom(ext, uint16(s.sp.Port))
}

func TestExternalTrafficPolicyLocalShortCircuitsPodsAndTheNode(t *testing.T) {
	t.Parallel()
	local, remote := startTCPBackend(t, "local"), startTCPBackend(t, "remote")
	nets := newClientNets()
	p := outsideProxier(t, &kpconfig.KubeProxyConfiguration{ClusterCIDR: nets.cidr}, nets.node)
	s, ext := etpLocal(t, v1.ProtocolTCP, []testBackend{local}, []testBackend{remote})
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	if cnt := counts(names(t, nets.outside, ext, 4)); cnt["local"] != 4 {
		t.Fatalf("outside client reached %v, want only the local endpoint", cnt)
	}
	for _, c := range []struct {
		what string
		src  netip.Addr
	}{{"pod (in clusterCIDR)", nets.pod}, {"node (a host address)", nets.node}} {
		if cnt := counts(names(t, c.src, ext, 4)); cnt["local"] != 2 || cnt["remote"] != 2 {
			t.Fatalf("%s reached %v, want every endpoint of the cluster", c.what, cnt)
		}
	}
	vs, err := p.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Address == ext.String() && len(v.RealServers) != 2 {
			t.Fatalf("kproxy list shows %v for the externalIP, want both endpoints once", v.RealServers)
		}
	}
}

func TestExternalTrafficPolicyLocalWithoutLocalEndpointTCP(t *testing.T) {
	t.Parallel()
	remote := startTCPBackend(t, "remote")
	nets := newClientNets()
	p := outsideProxier(t, &kpconfig.KubeProxyConfiguration{ClusterCIDR: nets.cidr}, nets.node)
	s, ext := etpLocal(t, v1.ProtocolTCP, nil, []testBackend{remote})
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	for _, src := range []netip.Addr{nets.pod, nets.node} {
		if got := names(t, src, ext, 1)[0]; got != "remote" {
			t.Fatalf("in-cluster client %s reached %q, want the remote endpoint", src, got)
		}
	}
	// The outside client is dropped: closed without an answer, not reset.
	expectClosedWithoutAnswer(t, nets.outside, ext)
}

func TestExternalTrafficPolicyLocalWithoutLocalEndpointUDP(t *testing.T) {
	t.Parallel()
	remote := startUDPBackend(t, "remote")
	nets := newClientNets()
	p := outsideProxier(t, &kpconfig.KubeProxyConfiguration{ClusterCIDR: nets.cidr}, nets.node)
	s, ext := etpLocal(t, v1.ProtocolUDP, nil, []testBackend{remote})
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	for _, src := range []netip.Addr{nets.pod, nets.node} {
		if got, err := askUDPFrom(src, ext, 2*time.Second); err != nil || got != "remote:x" {
			t.Fatalf("in-cluster client %s: %q, %v; want the remote endpoint's answer", src, got, err)
		}
	}
	if got, err := askUDPFrom(nets.outside, ext, 300*time.Millisecond); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("outside client: %q, %v; want no answer at all", got, err)
	}
}

func TestInternalTrafficPolicyLocalWithoutLocalEndpointDrops(t *testing.T) {
	t.Parallel()
	remote := startTCPBackend(t, "remote")
	ip := randLoopback()
	s := newSvc("itp", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), remote)
	s.sp.InternalPolicyLocal = true
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	expectClosedWithoutAnswer(t, netip.Addr{}, s.addr())
}

func TestNoEndpointsRefusesTCPUntilOneAppears(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("empty", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	p, _ := testProxier(t, nil)
	for round := 0; round < 2; round++ {
		s.eps = nil
		sn := snap(state.NodeInfo{}, s)
		mustSync(t, p, sn, allChanged(sn))
		expectRefused(t, s.addr())
		s.eps = []state.Endpoint{ep(a, 1)}
		sn = snap(state.NodeInfo{}, s)
		mustSync(t, p, sn, allChanged(sn))
		if got := names(t, netip.Addr{}, s.addr(), 1)[0]; got != "A" {
			t.Fatalf("round %d: answer from %q after the endpoint appeared, want A", round, got)
		}
	}
}

func TestNoEndpointsKeepsOpenConnections(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("emptied", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := dialName(t, netip.Addr{}, s.addr())
	defer held.Close()
	s.eps = nil
	sn = snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	expectRefused(t, s.addr())
	if got := held.ask(t); got != "A" {
		t.Fatalf("connection open before the last endpoint left answered %q, want A", got)
	}
}

func TestNoEndpointsUDPIsRefusedByTheKernel(t *testing.T) {
	t.Parallel()
	a := startUDPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("dns", v1.ProtocolUDP, ip, freePort(t, "udp", ip))
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := askConn(c, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("no endpoints: %q, %v; want ICMP port unreachable (ECONNREFUSED)", got, err)
	}
	s.eps = []state.Endpoint{ep(a, 1)}
	sn = snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	if got, err := askConn(c, 2*time.Second); err != nil || got != "A:x" {
		t.Fatalf("after the endpoint appeared, on the same socket: %q, %v; want A's answer", got, err)
	}
}

func TestServiceAddressStaysClaimedWithoutEndpoints(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	fake := &fakeAddrs{root: true, added: map[netip.Addr]bool{}}
	p.addrs = fake
	opened := 0
	p.listen = func(*frontend) error { opened++; return nil }
	p.localAddrs = func() ([]netip.Addr, error) { return nil, nil }
	ci := netip.MustParseAddr("10.96.7.1")
	s := newSvc("ci", v1.ProtocolTCP, ci, 80)
	for i, eps := range [][]state.Endpoint{nil, {{IP: netip.MustParseAddr("10.244.0.5"), Port: 80, Ready: true, Serving: true, Weight: 1}}, nil} {
		s.eps = eps
		sn := snap(state.NodeInfo{}, s)
		mustSync(t, p, sn, allChanged(sn))
		if !fake.added[ci] || p.ourAddrs[ci] != 1 {
			t.Fatalf("step %d: ClusterIP added %v with %d references, want added once: "+
				"refusing needs the address local", i, fake.added[ci], p.ourAddrs[ci])
		}
		if fe := p.frontends[feKey{v1.ProtocolTCP, s.addr()}]; fe == nil || fe.listening != (eps != nil) {
			t.Fatalf("step %d: frontend %v, want listening only with an endpoint", i, fe)
		}
	}
	if opened != 1 {
		t.Fatalf("listened %d times, want once", opened)
	}
	sn := snap(state.NodeInfo{})
	mustSync(t, p, sn, allChanged(snap(state.NodeInfo{}, s)))
	if fake.added[ci] {
		t.Fatal("ClusterIP of a deleted Service without endpoints was not removed")
	}
}

func TestSuccessorCheckSkipsPortsWithoutEndpoints(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	live := newSvc("live", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	empty := newSvc("empty", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, live, empty)
	mustSync(t, p, sn, allChanged(sn))
	succ, err := listenTCPShared(live.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.successorListening() {
		t.Fatal("a successor listens on the only listening address, but the drain would not see it")
	}
}

func TestClassifier(t *testing.T) {
	t.Parallel()
	c := &classifier{clusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10::/64")}, loopback: true}
	// 10.96.0.10 is a Service address kproxy made local with a route: no
	// interface lists it, and a client on the node connecting to it has it as source.
	c.setHost(map[netip.Addr]bool{netip.MustParseAddr("192.168.1.10"): true})
	c.addOurs(netip.MustParseAddr("10.96.0.10"))
	c.addOurs(netip.MustParseAddr("10.96.0.12"))
	c.delOurs(netip.MustParseAddr("10.96.0.12"))
	for a, want := range map[string]bool{
		"10.244.3.4": true, "fd00:10::5": true, "192.168.1.10": true, "127.0.0.1": true, "::1": true, "10.96.0.10": true,
		"10.96.0.11": false, "10.96.0.12": false,
		"10.245.0.1": false, "192.168.1.11": false, "203.0.113.9": false, "fd00:11::5": false,
	} {
		if got := c.inCluster(netip.MustParseAddr(a)); got != want {
			t.Errorf("inCluster(%s) = %v, want %v", a, got, want)
		}
	}
	if _, err := parseClusterCIDRs("10.244.0.0/16, nonsense"); err == nil || !strings.Contains(err.Error(), "clusterCIDR[1]") {
		t.Errorf("bad clusterCIDR: error %v, want one naming clusterCIDR[1]", err)
	}
}

// expectRefused dials addr and wants ECONNREFUSED from connect() itself.
func expectRefused(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("connect to %s succeeded, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to %s: %v, want ECONNREFUSED", addr, err)
	}
}

// expectClosedWithoutAnswer dials addr from src and wants the connection
// accepted and closed (EOF) without data and without a reset.
func expectClosedWithoutAnswer(t testing.TB, src netip.Addr, addr netip.AddrPort) {
	t.Helper()
	d := net.Dialer{Timeout: time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("connect to %s: %v, want it accepted and closed without answer", addr, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, err %v from %s: want EOF (closed without answer, no reset)", n, err, addr)
	}
}

// askUDPFrom sends "x" to addr from src and returns the answer.
func askUDPFrom(src netip.Addr, addr netip.AddrPort, timeout time.Duration) (string, error) {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer c.Close()
	return askConn(c, timeout)
}

// askConn sends "x" on a connected UDP socket and returns the answer.
func askConn(c *net.UDPConn, timeout time.Duration) (string, error) {
	if _, err := c.Write([]byte("x")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
