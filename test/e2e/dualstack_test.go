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
// family, each endpoint seeing the client address kube-proxy would give it: the
// pod's own address (the cluster CIDR has a prefix per family), the node
// masqueraded to its address on the endpoint's link; in userspace mode the
// relay's, that same node address, for every client. In ebpf mode the node and
// the pod connect from the attach cgroup: socket LB (connect4 and connect6)
// connects them to the endpoint itself, the pod with its own address, the node
// with its address on the endpoint's link (routing's choice, the same address a
// masquerade gives here). Its IPv6 EndpointSlice does not keep IPv4 from being
// programmed (it did in iptables mode, issue 12 item 2).
func TestDualStack(t *testing.T) {
	netns.RequireRoot(t)
	for _, m := range append(append([]mode{}, modes...), userspaceMode()) {
		t.Run(m.Name, func(t *testing.T) { runDualStack(t, m) })
	}
	t.Run("ebpf", func(t *testing.T) { runDualStack(t, newEBPFNode(t).mode()) })
}

func runDualStack(t *testing.T, m mode) {
	c := newCluster(t, m, 2)
	c.env.Node.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	pod := c.env.AddBackend("pod")
	var v4, v6, node6 []netip.Addr
	for i, be := range c.backends {
		v4 = append(v4, be.IP)
		v6 = append(v6, c.env.AddIPv6(t, be, "244", i+1))
		node6 = append(node6, netip.MustParseAddr(fmt.Sprintf("fd00:244:%d::1", i+1)))
		be.ServeTCP6Reply(t, backendPort, be.Name)
	}
	pod6 := c.env.AddIPv6(t, pod, "244", len(c.backends)+1)
	// The node's route for the IPv6 Service range, through the outside client
	// as its IPv4 default route (see newCluster): the node then connects from
	// an address outside the cluster CIDR, in both families.
	client6 := c.env.AddIPv6(t, c.client, "168", len(c.backends)+2)
	c.env.Node.MustRun(t, "ip", "-6", "route", "add", "fd00:96::/64", "via", client6.String())
	c.apply("dual", dualStackManifest(v4, v6))
	c.start("--cluster-cidr", clusterCIDR+",fd00:244::/32")
	relayed := m.ProxyMode == "userspace"
	for _, from := range []struct {
		ns         *netns.NS
		own4, own6 netip.Addr // the client's own addresses; invalid: the node, masqueraded
	}{{c.env.Node, netip.Addr{}, netip.Addr{}}, {pod, pod.IP, pod6}} {
		want4, want6 := map[string]string{}, map[string]string{}
		for i, be := range c.backends {
			want4[be.Name], want6[be.Name] = be.NodeIP.String(), node6[i].String()
			if from.own4.IsValid() && !relayed {
				want4[be.Name], want6[be.Name] = from.own4.String(), from.own6.String()
			}
		}
		ask := func() error {
			askSourcesOver(t, from.ns, "tcp4", "10.96.3.1:80", want4)
			askSourcesOver(t, from.ns, "tcp6", "[fd00:96::3:1]:80", want6)
			return nil
		}
		if m.ebpf != nil {
			_ = m.ebpf.inCgroup(ask)
		} else {
			_ = ask()
		}
	}
	if m.ebpf != nil {
		noDNATedFlows(t, c.env.Node, "", "10.96.3.1", backendPort)
		noDNATedFlows(t, c.env.Node, "", "fd00:96::3:1", backendPort)
	}
}

// askSourcesOver connects over network ("tcp4", "tcp6") until every endpoint
// in want (name: the client address it must see) answered, each seeing its
// address.
func askSourcesOver(t *testing.T, from *netns.NS, network, addr string, want map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	err := netns.Eventually(t.Context(), 15*time.Second, func() error {
		for i := 0; i < 20; i++ {
			got, src, err := from.AskTCPSource(network, addr, time.Second)
			if err != nil {
				return err
			}
			w, ok := want[got]
			if !ok {
				return fmt.Errorf("answer from %q, outside %v", got, want)
			}
			if src != w {
				return fmt.Errorf("%s saw the client as %s, want %s", got, src, w)
			}
			seen[got] = true
		}
		if len(seen) < len(want) {
			return fmt.Errorf("only %v answered, want %v", seen, want)
		}
		return nil
	})
	if err != nil {
		t.Errorf("over %s to %s from %s: %v", network, addr, from.Name, err)
	}
}
