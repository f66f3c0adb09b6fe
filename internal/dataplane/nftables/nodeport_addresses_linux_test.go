//go:build linux

package nftables

import (
	"net/netip"
	"strings"
	"testing"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

func TestConfigDefaultsNodePortAddressesToPrimary(t *testing.T) {
	nc, err := configFrom(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{}})
	if err != nil || strings.Join(nc.nodePortAddresses, ",") != "primary" {
		t.Fatalf("nodePortAddresses = %q, %v; want kube-proxy's nftables default [primary]", nc.nodePortAddresses, err)
	}
	nc, _ = configFrom(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{NodePortAddresses: []string{"all"}}})
	if strings.Join(nc.nodePortAddresses, ",") != "all" {
		t.Fatalf("explicit list replaced: %q", nc.nodePortAddresses)
	}
	o := nc.forFamily(familyIPv4, []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1")})
	if len(o.nodePortIPs) != 1 || o.nodePortIPs[0] != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("nodePortIPs %v: loopback must never be DNATed", o.nodePortIPs)
	}
}

// refused dials addr from the proxy namespace and fails the test unless the
// connection is refused: a NodePort outside nodePortAddresses is not DNATed, so
// nothing listens there, and the client must learn it at once instead of hanging.
func refused(t *testing.T, tb *testbed, addr string) {
	t.Helper()
	got, err := dialIdentity(t, tb.proxy, addr)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("%s: got %q, %v; want connection refused", addr, got, err)
	}
}

// TestKernelNodePortAddressesKeywords: the nftables default ("primary") serves
// NodePorts on the node's primary address only; "all" on every address but
// loopback; 127.0.0.1:NodePort is refused in both.
func TestKernelNodePortAddressesKeywords(t *testing.T) {
	for _, c := range []struct {
		name      string
		list      []string
		secondary bool // whether 10.201.0.1 (a second node address) serves it
	}{
		{"default primary", nil, false},
		{"all", []string{"all"}, true},
		{"primary plus CIDR", []string{"primary", "10.201.0.0/16"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestbed(t)
			tb.proxy.ip(t, "addr", "add", "10.201.0.1/32", "dev", "lo")
			p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{
				ClusterCIDR: "10.244.0.0/16", NodePortAddresses: c.list}})
			if err != nil {
				t.Fatal(err)
			}
			p.useNetns(tb.proxy.fd)
			p.localAddrs = func() ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.200.0.1"), netip.MustParseAddr("10.201.0.1")}, nil
			}
			tb.p = p
			s := &spec{name: "np", clusterIP: "10.96.0.18", port: 80, nodePort: 30080}
			snap := snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()[:1]})
			// The Node object names the primary address (kube-proxy always has one).
			snap.Node.Addresses = []netip.Addr{netip.MustParseAddr("10.200.0.1"), netip.MustParseAddr("10.201.0.1")}
			tb.sync(t, snap)
			if got, err := dialIdentity(t, tb.proxy, "10.200.0.1:30080"); err != nil || got != backends[0]+":8080" {
				t.Fatalf("primary address: got %q, %v; want %s", got, err, backends[0])
			}
			if c.secondary {
				if got, err := dialIdentity(t, tb.proxy, "10.201.0.1:30080"); err != nil || got != backends[0]+":8080" {
					t.Fatalf("second address: got %q, %v; want %s", got, err, backends[0])
				}
			} else {
				refused(t, tb, "10.201.0.1:30080")
			}
			refused(t, tb, "127.0.0.1:30080")
		})
	}
}
