//go:build linux

package userspace

import (
	"net/netip"
	"testing"
)

func TestListenerCountsSeesASecondListener(t *testing.T) {
	t.Parallel()
	for _, ip := range []netip.Addr{randLoopback(), netip.IPv6Loopback()} {
		a := netip.AddrPortFrom(ip, uint16(freePort(t, "tcp", ip)))
		first, err := listenTCPShared(a)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		if c, err := listenerCounts([]netip.AddrPort{a}); err != nil || c[a] != 1 {
			t.Fatalf("%s with one listener: counts %v, %v", a, c, err)
		}
		second, err := listenTCPShared(a) // a successor's SO_REUSEPORT listener
		if err != nil {
			t.Fatalf("second listener on %s: %v", a, err)
		}
		if c, err := listenerCounts([]netip.AddrPort{a}); err != nil || c[a] != 2 {
			t.Fatalf("%s with two listeners: counts %v, %v", a, c, err)
		}
		second.Close()
	}
}
