//go:build linux

package ipvs

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// TestFullSyncTakesOverKubeIPVS0Addresses starts on a kube-ipvs0 as kube-proxy
// leaves it: a Service address, a stale one and an IPv6 one bound as interface
// addresses (which the node's address listing also reports). The first sync
// routes the wanted addresses, removes every interface address and routes the
// IPv4 ones again (the fake, like the kernel, drops the link's IPv4 routes with
// its last IPv4 address); NodePorts are not served on the addresses kube-proxy
// left.
func TestFullSyncTakesOverKubeIPVS0Addresses(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	wanted, stale, v6 := netip.MustParseAddr("10.96.0.50"), netip.MustParseAddr("10.96.0.99"), netip.MustParseAddr("fd00::50")
	if err := f.links.EnsureDummy(DummyLink); err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{wanted, stale, v6} {
		if err := f.links.BindIfAddr(DummyLink, a); err != nil {
			t.Fatal(err)
		}
	}
	f.p.k.LocalAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.168.7.2"), wanted, stale}, nil
	}
	sp := clusterIP("web", "10.96.0.50", 80, v1.ProtocolTCP)
	sp.NodePort = 30050
	six := clusterIP("web6", "fd00::50", 80, v1.ProtocolTCP)
	f.set(six.Name, six, ep("[fd00:1::1]:80", 1))
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))

	if left, _ := f.links.IfAddrs(DummyLink); len(left) != 0 {
		t.Errorf("interface addresses left on %s: %v", DummyLink, left)
	}
	routed, _ := f.links.Addrs(DummyLink)
	if len(routed) != 2 || !f.links.Has(DummyLink, wanted) || !f.links.Has(DummyLink, v6) {
		t.Errorf("local routes %v, want %s and %s (not the stale %s)", routed, wanted, v6, stale)
	}
	if f.vs(key("192.168.7.2:30050", unix.IPPROTO_TCP)) == nil {
		t.Error("no NodePort virtual server on the node address")
	}
	for _, a := range []string{"10.96.0.50:30050", "10.96.0.99:30050"} {
		if f.vs(key(a, unix.IPPROTO_TCP)) != nil {
			t.Errorf("NodePort served on %s, an address kube-proxy left on %s", a, DummyLink)
		}
	}
	if d, err := f.p.Damaged(t.Context()); err != nil || d {
		t.Errorf("after the takeover the check finds damage=%v err=%v", d, err)
	}
}
