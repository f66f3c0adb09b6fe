package userspace

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func TestRoundRobinAcrossEndpoints(t *testing.T) {
	t.Parallel()
	a, b, c := startTCPBackend(t, "A"), startTCPBackend(t, "B"), startTCPBackend(t, "C")
	ip := randLoopback()
	s := newSvc("web", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b, c)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	got := strings.Join(names(t, netip.Addr{}, s.addr(), 6), "")
	if got != "ABCABC" {
		t.Fatalf("backends in order %s, want ABCABC", got)
	}
}

func TestClientIPAffinity(t *testing.T) {
	t.Parallel()
	a, b, c := startTCPBackend(t, "A"), startTCPBackend(t, "B"), startTCPBackend(t, "C")
	ip := randLoopback()
	s := newSvc("sticky", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b, c)
	s.sp.AffinityTimeout = time.Hour
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	client1, client2 := randLoopback(), randLoopback()
	first := names(t, client1, s.addr(), 5)
	if cnt := counts(first); len(cnt) != 1 {
		t.Fatalf("client 1 reached %v, want one backend", cnt)
	}
	second := names(t, client2, s.addr(), 5)
	if cnt := counts(second); len(cnt) != 1 || second[0] == first[0] {
		t.Fatalf("client 2 reached %v, want one backend other than client 1's %s", cnt, first[0])
	}
}

func TestClientIPAffinityExpires(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("sticky", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b)
	s.sp.AffinityTimeout = 300 * time.Millisecond
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	client := randLoopback()
	first := names(t, client, s.addr(), 2)
	if first[0] != first[1] {
		t.Fatalf("within the timeout the client moved: %v", first)
	}
	time.Sleep(400 * time.Millisecond)
	if got := names(t, client, s.addr(), 1)[0]; got == first[0] {
		t.Fatalf("after the timeout the client stayed on %s; rr should move it on", got)
	}
}

func TestRemovedEndpointDrains(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("drain", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := dialName(t, netip.Addr{}, s.addr())
	defer held.Close()
	if held.name != "A" {
		t.Fatalf("first connection went to %s, want A", held.name)
	}
	s2 := newSvc("drain", v1.ProtocolTCP, ip, int(s.sp.Port), b)
	sn2 := snap(state.NodeInfo{}, s2)
	mustSync(t, p, sn2, allChanged(sn2))
	if cnt := counts(names(t, netip.Addr{}, s.addr(), 4)); cnt["B"] != 4 {
		t.Fatalf("after removing A, new connections went to %v, want only B", cnt)
	}
	if got := held.ask(t); got != "A" {
		t.Fatalf("open connection to the removed endpoint answered %q, want A", got)
	}
}

func TestRemovedServiceClosesListenerButKeepsOpenConnections(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("gone", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := dialName(t, netip.Addr{}, s.addr())
	defer held.Close()
	mustSync(t, p, snap(state.NodeInfo{}), allChanged(sn))
	if _, err := net.DialTimeout("tcp", s.addr().String(), time.Second); err == nil {
		t.Fatal("removed Service still accepts connections")
	}
	if got := held.ask(t); got != "A" {
		t.Fatalf("open connection of the removed Service answered %q, want A", got)
	}
}

func TestSyncIsIdempotentAndKeepsListeners(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("same", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	other := newSvc("other", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s, other)
	st := mustSync(t, p, sn, allChanged(sn))
	if st.Rules["listeners"] != 2 || st.Written["listeners"] != 2 {
		t.Fatalf("first sync stats %+v, want 2 listeners written", st)
	}
	before := p.frontends[feKey{v1.ProtocolTCP, s.addr()}]
	st = mustSync(t, p, sn, allChanged(sn))
	if st.Written["listeners"] != 0 {
		t.Fatalf("second sync of the same snapshot wrote %d listeners, want 0", st.Written["listeners"])
	}
	// Changing one Service leaves the other's listener and config alone.
	b := startTCPBackend(t, "B")
	other2 := newSvc("other", v1.ProtocolTCP, ip, int(other.sp.Port), a, b)
	sn2 := snap(state.NodeInfo{}, s, other2)
	cfgBefore := before.cfg.Load()
	st = mustSync(t, p, sn2, allChanged(snap(state.NodeInfo{}, other2)))
	if st.Written["listeners"] != 1 {
		t.Fatalf("changing one Service wrote %d listeners, want 1", st.Written["listeners"])
	}
	if after := p.frontends[feKey{v1.ProtocolTCP, s.addr()}]; after != before || after.cfg.Load() != cfgBefore {
		t.Fatal("the unchanged Service's frontend was replaced")
	}
}

func TestUDPRelay(t *testing.T) {
	t.Parallel()
	a, b := startUDPBackend(t, "A"), startUDPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("dns", v1.ProtocolUDP, ip, freePort(t, "udp", ip), a, b)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	var got []string
	for i := 0; i < 2; i++ {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for j := 0; j < 2; j++ {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("flow %d: no reply through the Service address: %v", i, err)
			}
			got = append(got, string(buf[:n]))
		}
	}
	if strings.Join(got, " ") != "A:hello A:hello B:hello B:hello" {
		t.Fatalf("replies %q: want each flow to stay on its endpoint, flows spread A then B", got)
	}
}

func TestUDPFlowIdlesOut(t *testing.T) {
	t.Parallel()
	a := startUDPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("dns", v1.ProtocolUDP, ip, freePort(t, "udp", ip), a)
	p, _ := testProxier(t, nil)
	p.udpIdle = 200 * time.Millisecond
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	fe := p.frontends[feKey{v1.ProtocolUDP, s.addr()}]
	if fe.open.Load() != 1 {
		t.Fatalf("open flows = %d, want 1", fe.open.Load())
	}
	eventually(t, "the idle flow to end", func() bool { return fe.open.Load() == 0 })
}

func TestIPv6ClusterIP(t *testing.T) {
	t.Parallel()
	v6 := netip.IPv6Loopback()
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(v6, 0)))
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	l.Close()
	a := startTCPBackendOn(t, v6, "A")
	s := newSvc("v6", v1.ProtocolTCP, v6, freePort(t, "tcp", v6), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	if got := names(t, netip.Addr{}, s.addr(), 1)[0]; got != "A" {
		t.Fatalf("[::1] ClusterIP answered %q, want A", got)
	}
}

func TestUDPFlowMovesWhenItsEndpointIsRemoved(t *testing.T) {
	t.Parallel()
	a, b := startUDPBackend(t, "A"), startUDPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("dns", v1.ProtocolUDP, ip, freePort(t, "udp", ip), a, b)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ask := func() string {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("q")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply: %v", err)
		}
		return string(buf[:n])
	}
	if got := ask(); got != "A:q" {
		t.Fatalf("first reply %q, want A:q", got)
	}
	s2 := newSvc("dns", v1.ProtocolUDP, ip, int(s.sp.Port), b)
	sn2 := snap(state.NodeInfo{}, s2)
	mustSync(t, p, sn2, allChanged(sn2))
	if got := ask(); got != "B:q" {
		t.Fatalf("after removing A the flow got %q, want B:q (stale flows end, as conntrack entries are deleted)", got)
	}
}

// Endpoint changes under load must never leave a new connection without an
// endpoint while the Service always has one.
func TestNoResetWhileEndpointsChange(t *testing.T) {
	t.Parallel()
	a, b, c := startTCPBackend(t, "A"), startTCPBackend(t, "B"), startTCPBackend(t, "C")
	ip := randLoopback()
	port := freePort(t, "tcp", ip)
	sets := []*svc{newSvc("churn", v1.ProtocolTCP, ip, port, a, b), newSvc("churn", v1.ProtocolTCP, ip, port, b, c)}
	p, _ := testProxier(t, nil)
	first := snap(state.NodeInfo{}, sets[0])
	mustSync(t, p, first, allChanged(first))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 60; i++ {
			sn := snap(state.NodeInfo{}, sets[i%2])
			if _, err := coreFor(p).Sync(t.Context(), sn, allChanged(sn)); err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	addr := sets[0].addr()
	for n := 0; ; n++ {
		select {
		case <-done:
			if n < 10 {
				t.Fatalf("only %d connections during the churn", n)
			}
			return
		default:
		}
		if got := names(t, netip.Addr{}, addr, 1)[0]; got == "" {
			t.Fatal("empty answer")
		}
	}
}
