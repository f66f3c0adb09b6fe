//go:build linux

package ipvs

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// addIPv6 gives the link of ns (made by topology.add) the addresses
// fd00:244:<third octet>::1 on the node side and ::2 in ns, with ns routing IPv6
// through the node, and returns ns's and the node's addresses. nodad: duplicate
// address detection would keep them unusable for a second.
func (tp *topology) addIPv6(ns *netns.NS) (ip, node netip.Addr) {
	tp.t.Helper()
	k := ns.NodeIP.As4()[2]
	node = netip.MustParseAddr(fmt.Sprintf("fd00:244:%d::1", k))
	ip = netip.MustParseAddr(fmt.Sprintf("fd00:244:%d::2", k))
	sh(tp.t, "ip", "-6", "addr", "add", node.String()+"/64", "dev", ns.NodeLink, "nodad")
	ns.MustRun(tp.t, "ip", "-6", "addr", "add", ip.String()+"/64", "dev", "eth0", "nodad")
	ns.MustRun(tp.t, "ip", "-6", "route", "add", "default", "via", node.String())
	return ip, node
}

// dialer is a place connections start from: a namespace or the VM's root.
type dialer func(network, addr string) (net.Conn, error)

// TestGuestDualStack: a dual-stack NodePort Service is reached over IPv4 and
// IPv6, at its ClusterIPs and at the node's NodePort addresses, from a pod and
// from the node itself, each family reaching every endpoint of its own family.
func TestGuestDualStack(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	// The replies to a pod's IPv6 connection are forwarded (IPVS un-NATs them
	// in FORWARD); kproxy, as kube-proxy, leaves IPv6 forwarding to the CNI.
	sh(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	backends := tp.backends("ds-be", 2, false)
	var eps []state.Endpoint
	for _, be := range backends {
		ip6, _ := tp.addIPv6(be)
		be.ServeTCP6Reply(t, 8080, be.Name)
		eps = append(eps, endpoints(8080, be)...)
		eps = append(eps, state.Endpoint{IP: ip6, Port: 8080, Ready: true, Serving: true, Weight: 1, IsLocal: true})
	}
	pod := tp.add("ds-pod", "10.244")
	_, podGW6 := tp.addIPv6(pod)

	dp := newDataplane(t, "")
	b := newSnapshot()
	b.s.Node.Addresses = []netip.Addr{pod.NodeIP, podGW6}
	svc := service("dual", "10.96.6.1", 80, v1.ProtocolTCP)
	svc.ClusterIPs = append(svc.ClusterIPs, netip.MustParseAddr("fd00:96::6:1"))
	svc.Type, svc.NodePort = v1.ServiceTypeNodePort, 30600
	syncOK(t, dp, b, svc, eps)

	want := map[string]bool{backends[0].Name: true, backends[1].Name: true}
	places := map[string]dialer{
		"pod": func(network, addr string) (net.Conn, error) { return pod.Dial(network, addr, timeout) },
		"node": func(network, addr string) (net.Conn, error) {
			return net.DialTimeout(network, addr, timeout)
		},
	}
	targets := []struct{ network, addr string }{
		{"tcp4", "10.96.6.1:80"},
		{"tcp6", "[fd00:96::6:1]:80"},
		{"tcp4", netip.AddrPortFrom(pod.NodeIP, 30600).String()},
		{"tcp6", netip.AddrPortFrom(podGW6, 30600).String()},
	}
	for place, dial := range places {
		for _, tg := range targets {
			seen := map[string]bool{}
			for i := 0; i < 4; i++ { // rr: consecutive connections alternate
				c, err := dial(tg.network, tg.addr)
				if err != nil {
					t.Fatalf("from %s to %s: %v", place, tg.addr, err)
				}
				got, err := netns.ReadLine(c, timeout)
				c.Close()
				if err != nil {
					t.Fatalf("from %s to %s: %v", place, tg.addr, err)
				}
				if !want[got] {
					t.Fatalf("from %s to %s: answer %q, want one of %v", place, tg.addr, got, want)
				}
				seen[got] = true
			}
			if len(seen) != len(want) {
				t.Errorf("from %s to %s: reached %v, want every endpoint %v", place, tg.addr, seen, want)
			}
		}
	}
}
