package userspace

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// activeConns reads the ActiveConn column of `kproxy list` for one frontend.
func activeConns(t *testing.T, p *Proxier, addr netip.AddrPort) map[string]int64 {
	t.Helper()
	vss, err := p.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, vs := range vss {
		if vs.Address == addr.String() {
			for _, rs := range vs.RealServers {
				out[rs.Address] = rs.ActiveConn
			}
		}
	}
	return out
}

func TestLeastConnectionPrefersFewerOpenConnections(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("lc", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b)
	s.sp.Scheduler = "lc"
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := map[string][]*conn{}
	for i := 0; i < 4; i++ {
		c := dialName(t, netip.Addr{}, s.addr())
		held[c.name] = append(held[c.name], c)
	}
	if len(held["A"]) != 2 || len(held["B"]) != 2 {
		t.Fatalf("4 connections spread %d:%d, want 2:2", len(held["A"]), len(held["B"]))
	}
	for _, c := range held["B"] {
		c.Close()
	}
	defer func() {
		for _, c := range held["A"] {
			c.Close()
		}
	}()
	eventually(t, "B's connections to end", func() bool { return activeConns(t, p, s.addr())[b.addr.String()] == 0 })
	// A has 2 open, B none: lc sends the next two to B.
	for i := 0; i < 2; i++ {
		c := dialName(t, netip.Addr{}, s.addr())
		defer c.Close()
		if c.name != "B" {
			t.Fatalf("new connection %d went to %s with A holding 2 and B %d open; want B", i, c.name, i)
		}
	}
	if got := activeConns(t, p, s.addr()); got[a.addr.String()] != 2 || got[b.addr.String()] != 2 {
		t.Fatalf("ActiveConn = %v, want 2 each", got)
	}
}

func TestSourceHashingKeepsClientOnOneBackend(t *testing.T) {
	t.Parallel()
	a, b, c := startTCPBackend(t, "A"), startTCPBackend(t, "B"), startTCPBackend(t, "C")
	ip := randLoopback()
	s := newSvc("sh", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a, b, c)
	s.sp.Scheduler = "sh"
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	seen := map[string]bool{}
	for i := 1; i <= 12; i++ {
		client := netip.MustParseAddr(fmt.Sprintf("127.77.0.%d", i))
		got := counts(names(t, client, s.addr(), 5))
		if len(got) != 1 {
			t.Fatalf("client %s reached %v, want one backend", client, got)
		}
		for n := range got {
			seen[n] = true
		}
	}
	if len(seen) < 2 {
		t.Fatalf("12 clients all hashed to %v; sh should spread them", seen)
	}
}

func TestWeightedRoundRobinSplits3To1(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("wrr", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	s.eps = []state.Endpoint{ep(a, 3), ep(b, 1)}
	s.sp.Scheduler = "wrr"
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	got := counts(names(t, netip.Addr{}, s.addr(), 300))
	if got["A"] < 215 || got["A"] > 235 || got["A"]+got["B"] != 300 {
		t.Fatalf("300 connections split A:B = %d:%d, want about 225:75", got["A"], got["B"])
	}
	t.Logf("wrr 3:1 split %d:%d", got["A"], got["B"])
}

func TestWeightZeroTakesNoNewConnections(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip := randLoopback()
	s := newSvc("w0", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	s.eps = []state.Endpoint{ep(a, 0), ep(b, 1)}
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	if got := counts(names(t, netip.Addr{}, s.addr(), 4)); got["B"] != 4 {
		t.Fatalf("with A at weight 0 connections went %v, want all to B", got)
	}
}
