package userspace

import (
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/state"
)

// BenchmarkChooseEndpointByClient is the choice on an externalIP of a Service
// with externalTrafficPolicy Local, where the client's address picks the set:
// "outside" reads clusterCIDR and the host's 1,000 addresses before taking the
// Local set, "pod" and "node" stop at clusterCIDR and at the host addresses.
// Compare with BenchmarkChooseEndpoint/services=1/same (one set, no check);
// allocs/op must stay the same (the lease).
func BenchmarkChooseEndpointByClient(b *testing.B) {
	host := make([]netip.Addr, 0, 1000)
	for i := 0; i < 1000; i++ {
		host = append(host, netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}))
	}
	p, _ := testProxier(b, &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16,fd00:10::/64"})
	p.listen = func(*frontend) error { return nil }
	p.addrs = &fakeAddrs{root: true, added: map[netip.Addr]bool{}}
	p.localAddrs = func() ([]netip.Addr, error) { return host, nil }
	s := newSvc("etp", v1.ProtocolTCP, netip.MustParseAddr("10.96.0.1"), 80)
	s.sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.1")}
	s.sp.ExternalPolicyLocal = true
	for i := 0; i < 3; i++ {
		s.eps = append(s.eps, state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(i), 5}), Port: 8080,
			Ready: true, Serving: true, Weight: 1, IsLocal: i == 0})
	}
	sn := snap(state.NodeInfo{}, s)
	mustSync(b, p, sn, allChanged(sn))
	fe := p.frontends[feKey{v1.ProtocolTCP, netip.MustParseAddrPort("203.0.113.1:80")}]
	for _, c := range []struct{ name, src string }{
		{"outside", "198.51.100.7:40000"}, {"pod", "10.244.9.9:40000"}, {"node", "192.168.3.200:40000"},
	} {
		b.Run(c.name, func(b *testing.B) {
			src := netip.MustParseAddrPort(c.src)
			now := time.Now()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				l, ok := fe.choose(src, now, &p.classify)
				if !ok {
					b.Fatal("no endpoint")
				}
				l.established(true)
				l.done()
			}
		})
	}
}
