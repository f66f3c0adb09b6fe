package userspace

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/state"
)

func TestNodePortOnNodeAddresses(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip, nodeIP, other := randLoopback(), randLoopback(), randLoopback()
	s := newSvc("np", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	s.sp.Type = v1.ServiceTypeNodePort
	s.sp.NodePort = int32(freePort(t, "tcp", nodeIP))
	// The Node object names two addresses; nodePortAddresses keeps one of them.
	cfg := &kpconfig.KubeProxyConfiguration{NodePortAddresses: []string{nodeIP.String() + "/32"}}
	p, _ := testProxier(t, cfg)
	sn := snap(state.NodeInfo{Name: "n1", Addresses: []netip.Addr{nodeIP, other}}, s)
	mustSync(t, p, sn, allChanged(sn))
	if got := names(t, netip.Addr{}, netip.AddrPortFrom(nodeIP, uint16(s.sp.NodePort)), 1)[0]; got != "A" {
		t.Fatalf("NodePort answered %q, want A", got)
	}
	if fe := p.frontends[feKey{v1.ProtocolTCP, netip.AddrPortFrom(other, uint16(s.sp.NodePort))}]; fe != nil {
		t.Fatal("NodePort listens on a node address nodePortAddresses excludes")
	}
}

func TestExternalTrafficPolicyLocalUsesLocalEndpoints(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "local"), startTCPBackend(t, "remote")
	ip, ext := randLoopback(), randLoopback()
	s := newSvc("etp", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	s.sp.ExternalIPs = []netip.Addr{ext}
	s.sp.ExternalPolicyLocal = true
	local := ep(a, 1)
	local.IsLocal = true
	s.eps = []state.Endpoint{local, ep(b, 1)}
	p := outsideProxier(t, nil)
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	if cnt := counts(names(t, netip.Addr{}, netip.AddrPortFrom(ext, uint16(s.sp.Port)), 4)); cnt["local"] != 4 {
		t.Fatalf("externalIP traffic reached %v, want only the local endpoint", cnt)
	}
	if cnt := counts(names(t, netip.Addr{}, s.addr(), 4)); cnt["local"] != 2 || cnt["remote"] != 2 {
		t.Fatalf("clusterIP traffic reached %v, want both endpoints", cnt)
	}
}

func TestLoadBalancerSourceRanges(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip, lbIP := randLoopback(), randLoopback()
	s := newSvc("lb", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	s.sp.Type = v1.ServiceTypeLoadBalancer
	s.sp.LoadBalancerIPs = []netip.Addr{lbIP}
	s.sp.LoadBalancerSourceRanges = []netip.Prefix{netip.MustParsePrefix("127.200.0.0/16")}
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	lbAddr := netip.AddrPortFrom(lbIP, uint16(s.sp.Port))
	if got := names(t, netip.MustParseAddr("127.200.3.4"), lbAddr, 1)[0]; got != "A" {
		t.Fatalf("allowed client got %q, want A", got)
	}
	if err := refused(netip.MustParseAddr("127.201.3.4"), lbAddr); err != nil {
		t.Fatalf("client outside loadBalancerSourceRanges: %v", err)
	}
	// The ranges restrict the load-balancer address only.
	if got := names(t, netip.MustParseAddr("127.201.3.4"), s.addr(), 1)[0]; got != "A" {
		t.Fatalf("clusterIP from outside the ranges got %q, want A", got)
	}
}

func TestAddressClaimedTwiceIsAnErrorForTheSecondServiceOnly(t *testing.T) {
	t.Parallel()
	a, b := startTCPBackend(t, "A"), startTCPBackend(t, "B")
	ip1, ip2, ext := randLoopback(), randLoopback(), randLoopback()
	port := freePort(t, "tcp", ext)
	first := newSvc("aaa", v1.ProtocolTCP, ip1, port, a)
	first.sp.ExternalIPs = []netip.Addr{ext}
	second := newSvc("bbb", v1.ProtocolTCP, ip2, port, b)
	second.sp.ExternalIPs = []netip.Addr{ext}
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, first, second)
	_, err := coreFor(p).Sync(t.Context(), sn, allChanged(sn))
	if err == nil || !strings.Contains(err.Error(), "default/bbb:p") || !strings.Contains(err.Error(), "default/aaa:p") {
		t.Fatalf("Sync error = %v, want one naming both Services", err)
	}
	if got := names(t, netip.Addr{}, netip.AddrPortFrom(ext, uint16(port)), 1)[0]; got != "A" {
		t.Fatalf("shared externalIP answered %q, want the first Service's A", got)
	}
	if got := names(t, netip.Addr{}, second.addr(), 1)[0]; got != "B" {
		t.Fatalf("second Service's clusterIP answered %q, want B", got)
	}
}

func TestHealthCheckNodePort(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip, ext := randLoopback(), randLoopback()
	s := newSvc("hc", v1.ProtocolTCP, ip, freePort(t, "tcp", ip))
	s.sp.Type = v1.ServiceTypeLoadBalancer
	s.sp.ExternalIPs = []netip.Addr{ext}
	s.sp.ExternalPolicyLocal = true
	s.sp.HealthCheckNodePort = int32(freePort(t, "tcp", netip.IPv4Unspecified()))
	local := ep(a, 1)
	local.IsLocal = true
	s.eps = []state.Endpoint{local}
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{Name: "n1"}, s)
	mustSync(t, p, sn, allChanged(sn))
	url := fmt.Sprintf("http://127.0.0.1:%d/", s.sp.HealthCheckNodePort)
	if code := httpStatus(t, url); code != http.StatusOK {
		t.Fatalf("health check with a local endpoint = %d, want 200", code)
	}
	s2 := *s
	s2.eps = []state.Endpoint{ep(a, 1)} // no longer local
	sn2 := snap(state.NodeInfo{Name: "n1"}, &s2)
	mustSync(t, p, sn2, allChanged(sn2))
	if code := httpStatus(t, url); code != http.StatusServiceUnavailable {
		t.Fatalf("health check without a local endpoint = %d, want 503", code)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
