//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// dualStackManifest is a RequireDualStack Service with one EndpointSlice per
// family, the endpoints of both on another node.
func dualStackManifest(v4, v6 []netip.Addr) string {
	m := `apiVersion: v1
kind: Service
metadata:
  name: dual
  namespace: default
spec:
  type: ClusterIP
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  clusterIP: 10.96.3.1
  clusterIPs: [10.96.3.1, "fd00:96::3:1"]
  ports:
  - name: p
    protocol: TCP
    port: 80
    targetPort: 8080
`
	for _, fam := range []struct {
		name  string
		addrs []netip.Addr
	}{{"IPv4", v4}, {"IPv6", v6}} {
		m += fmt.Sprintf(`---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dual-%s
  namespace: default
  labels:
    kubernetes.io/service-name: dual
addressType: %s
ports:
- name: p
  protocol: TCP
  port: 8080
endpoints:
`, strings.ToLower(fam.name), fam.name)
		for _, a := range fam.addrs {
			m += fmt.Sprintf("- addresses: [%q]\n  conditions: {ready: true}\n  nodeName: other-node\n", a.String())
		}
	}
	return m
}

// TestDualStack: a dual-stack Service answers on its IPv4 and its IPv6 ClusterIP,
// from the node and from a pod, each family reaching every endpoint of its own
// family; its IPv6 EndpointSlice does not keep IPv4 from being programmed (it did
// in iptables mode, issue 12 item 2).
func TestDualStack(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 2)
		c.env.Node.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
		pod := c.env.AddBackend("pod")
		var v4, v6 []netip.Addr
		for i, be := range c.backends {
			v4 = append(v4, be.IP)
			v6 = append(v6, c.env.AddIPv6(t, be, "244", i+1))
			be.ServeTCP6Reply(t, backendPort, be.Name)
		}
		c.env.AddIPv6(t, pod, "244", len(c.backends)+1)
		// The node's route for the IPv6 Service range, as its default route is
		// for IPv4 (see newCluster).
		c.env.Node.MustRun(t, "ip", "-6", "route", "add", "fd00:96::/64", "dev", c.backends[0].NodeLink)
		c.apply("dual", dualStackManifest(v4, v6))
		c.start()
		want := c.names(c.backends...)
		for _, from := range []*netns.NS{c.env.Node, pod} {
			c.askUntilAll(from, "10.96.3.1:80", want)
			askAllOver(c, from, "tcp6", "[fd00:96::3:1]:80", want)
		}
	})
}

// askAllOver is askUntilAll over a chosen network ("tcp6").
func askAllOver(c *cluster, from *netns.NS, network, addr string, want map[string]bool) {
	c.t.Helper()
	seen := map[string]bool{}
	c.eventually(fmt.Sprintf("answers over %s from every endpoint of %s (from %s)", network, addr, from.Name), func() error {
		for i := 0; i < 20; i++ {
			conn, err := from.Dial(network, addr, time.Second)
			if err != nil {
				return err
			}
			got, err := netns.ReadLine(conn, time.Second)
			conn.Close()
			if err != nil {
				return err
			}
			if !want[got] {
				return fmt.Errorf("answer from %q, outside %v", got, want)
			}
			seen[got] = true
		}
		if len(seen) < len(want) {
			return fmt.Errorf("only %v answered, want %v", seen, want)
		}
		return nil
	})
}
