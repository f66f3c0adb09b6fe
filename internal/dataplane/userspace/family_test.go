package userspace

import (
	"net"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// A dual-stack Service's frontends relay only to endpoints of their own family,
// as kube-proxy's per-family proxiers do: the IPv4 ClusterIP never reaches an
// IPv6 endpoint nor the IPv6 one an IPv4 endpoint. (The relay could dial
// across families, and did: e2e TestDualStack saw an IPv4 client reach an
// endpoint over IPv6.)
func TestDualStackFrontendsKeepToTheirFamily(t *testing.T) {
	t.Parallel()
	six := netip.MustParseAddr("::1")
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	a, b := startTCPBackend(t, "A"), startTCPBackendOn(t, six, "B")
	port := freePort(t, "tcp", six)
	ip4 := randLoopback()
	s := newSvc("dual", v1.ProtocolTCP, ip4, port, a, b)
	s.sp.ClusterIPs = append(s.sp.ClusterIPs, six)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	for addr, want := range map[netip.AddrPort]string{
		netip.AddrPortFrom(ip4, uint16(port)): "A",
		netip.AddrPortFrom(six, uint16(port)): "B",
	} {
		for i, got := range names(t, netip.Addr{}, addr, 12) {
			if got != want {
				t.Fatalf("%s, connection %d: answer from %s, want only %s (its family's endpoint)", addr, i, got, want)
			}
		}
	}
}
