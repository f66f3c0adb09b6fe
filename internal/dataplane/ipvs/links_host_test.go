//go:build linux

package ipvs

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestLocalRoutesBesideAddressesAndTheLastAddressFlush checks, on the real kernel
// in a private namespace (kube-ipvs0 is a veth end: the host has no dummy
// driver), what the takeover relies on: a local route can be added for an
// address kube-proxy bound to the link; removing the link's last IPv4 address
// drops the link's IPv4 routes (IPv6 ones stay), and adding them again restores
// them; a connection from the node to a routed address has it as source.
func TestLocalRoutesBesideAddressesAndTheLastAddressFlush(t *testing.T) {
	env := netns.New(t, "ipvsroutes-take")
	env.Node.MustRun(t, "ip", "link", "add", DummyLink, "type", "veth", "peer", "name", "kipvs-peer")
	env.Node.MustRun(t, "ip", "link", "set", "lo", "up")
	vip, other, v6 := netip.MustParseAddr("10.96.3.1"), netip.MustParseAddr("10.96.3.2"), netip.MustParseAddr("fd00:3::1")
	env.Node.MustRun(t, "ip", "addr", "add", vip.String()+"/32", "dev", DummyLink)
	env.Node.MustRun(t, "ip", "addr", "add", other.String()+"/32", "dev", DummyLink)
	l := netlinkLinks{}
	var beside []error
	var legacy, afterFlush, restored []netip.Addr
	var src string
	if err := env.Node.Do(func() error {
		if err := l.EnsureDummy(DummyLink); err != nil {
			return err
		}
		beside = l.AddAddrs(DummyLink, []netip.Addr{vip, other, v6})
		var err error
		if legacy, err = l.IfAddrs(DummyLink); err != nil {
			return err
		}
		for _, a := range legacy {
			if err := l.DelIfAddr(DummyLink, a); err != nil {
				return err
			}
		}
		if afterFlush, err = l.Addrs(DummyLink); err != nil {
			return err
		}
		for _, err := range l.AddAddrs(DummyLink, []netip.Addr{vip, other}) {
			if err != nil {
				return err
			}
		}
		if restored, err = l.Addrs(DummyLink); err != nil {
			return err
		}
		ln, err := net.Listen("tcp4", ":8080")
		if err != nil {
			return err
		}
		defer ln.Close()
		c, err := net.Dial("tcp4", vip.String()+":8080")
		if err != nil {
			return err
		}
		defer c.Close()
		src = c.LocalAddr().(*net.TCPAddr).IP.String()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, err := range beside {
		if err != nil {
			t.Errorf("route %d beside an address: %v", i, err)
		}
	}
	slices.SortFunc(legacy, netip.Addr.Compare)
	if !slices.Equal(legacy, []netip.Addr{vip, other}) {
		t.Errorf("IfAddrs %v, want %s and %s", legacy, vip, other)
	}
	if !slices.Equal(afterFlush, []netip.Addr{v6}) {
		t.Errorf("routes after the last IPv4 address went: %v, want only %s (the kernel drops the IPv4 ones)", afterFlush, v6)
	}
	slices.SortFunc(restored, netip.Addr.Compare)
	if !slices.Equal(restored, []netip.Addr{vip, other, v6}) {
		t.Errorf("routes after adding them again: %v", restored)
	}
	if src != vip.String() {
		t.Errorf("the node's connection to %s has source %s, want the address itself", vip, src)
	}
	if out := env.Node.MustRun(t, "ip", "-o", "-4", "addr", "show", "dev", DummyLink); out != "" {
		t.Errorf("addresses left on %s: %s", DummyLink, out)
	}
}
