//go:build linux

package conntrack

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"kproxy.dev/kproxy/internal/testing/netns"
)

func flow(dst string, dport uint16, replySrc string, rport uint16) *netlink.ConntrackFlow {
	f := &netlink.ConntrackFlow{}
	f.Forward.Protocol = 17
	f.Forward.DstIP = net.ParseIP(dst)
	f.Forward.DstPort = dport
	f.Reverse.SrcIP = net.ParseIP(replySrc)
	f.Reverse.SrcPort = rport
	return f
}

func TestFilterMatch(t *testing.T) {
	ep := netip.MustParseAddrPort("10.244.1.2:5353")
	vip := Filter{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53, Endpoint: ep}
	np := Filter{Protocol: 17, OrigDstPort: 30053, Endpoint: ep}
	cases := []struct {
		name string
		f    Filter
		fl   *netlink.ConntrackFlow
		want bool
	}{
		{"vip match", vip, flow("10.96.0.10", 53, "10.244.1.2", 5353), true},
		{"other endpoint", vip, flow("10.96.0.10", 53, "10.244.1.3", 5353), false},
		{"other endpoint port", vip, flow("10.96.0.10", 53, "10.244.1.2", 5354), false},
		{"other vip", vip, flow("10.96.0.11", 53, "10.244.1.2", 5353), false},
		{"nodeport any address", np, flow("192.168.1.1", 30053, "10.244.1.2", 5353), true},
		{"nodeport other port", np, flow("192.168.1.1", 30054, "10.244.1.2", 5353), false},
		{"any reply source", Filter{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53}, flow("10.96.0.10", 53, "10.96.0.10", 53), true},
		{"any reply source, other port", Filter{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53}, flow("10.96.0.10", 54, "10.96.0.10", 54), false},
	}
	for _, c := range cases {
		if got := c.f.MatchConntrackFlow(c.fl); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// TestDeleterRemovesNATedUDPFlow builds a real DNATed UDP flow in a node namespace and
// checks that the netlink deleter removes it and only it.
func TestDeleterRemovesNATedUDPFlow(t *testing.T) {
	env := netns.New(t, "iptables-ct")
	be := env.AddBackend("be")
	be.ServeUDP(t, 5353)
	cl := env.AddClient("cl")
	env.Node.MustRun(t, "iptables-nft", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.10", "-p", "udp",
		"--dport", "53", "-j", "DNAT", "--to-destination", be.IP.String()+":5353")
	if got, err := cl.AskUDP("10.96.0.10:53", 2*time.Second); err != nil || got != be.Name {
		t.Fatalf("DNAT path broken: %q %v", got, err)
	}
	ep := netip.AddrPortFrom(be.IP, 5353)
	var n uint
	err := env.Node.Do(func() (err error) {
		n, err = NewDeleter().Delete([]Filter{
			{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.99"), OrigDstPort: 53, Endpoint: ep},
			{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53, Endpoint: ep},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("deleted %d flows, want 1", n)
	}
	var left []*netlink.ConntrackFlow
	env.Node.Do(func() (err error) {
		left, err = netlink.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
		return err
	})
	for _, f := range left {
		if strings.Contains(f.String(), "10.96.0.10") {
			t.Fatalf("flow survived: %s", f)
		}
	}
}
