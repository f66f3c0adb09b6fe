//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// The cross-mode conformance suite on the real kernel: the shared table
// (internal/testing/conformance, which also runs on every mode's fakes) with real
// traffic from a pod behind the node, the node itself and an external host. All
// static scenarios share one node per mode (distinct Service addresses); the
// scenarios that change something run one after another on the same node.

// conformanceNode is one node running kproxy with the table's five backends
// (conformance.Backends: 0 and 1 on this node, 2 to 4 elsewhere), a pod that is
// not an endpoint and an external client.
type conformanceNode struct {
	*cluster
	be  []*netns.NS
	pod *netns.NS
}

// service turns a row of the shared table into this harness's manifest.
func (n *conformanceNode) service(s conformance.Service) service {
	out := service{Name: s.Name, ClusterIP: s.ClusterIP, Port: s.Port, NodePort: s.NodePort, ExternalIP: s.ExternalIP,
		LoadBalancerIP: s.LoadBalancerIP, HealthCheckNodePort: s.HealthCheckNodePort, InternalLocal: s.InternalLocal,
		Affinity: s.Affinity, Terminating: s.Terminating}
	if s.UDP {
		out.Protocol = "UDP"
	}
	if s.SourceRangeExternal {
		out.SourceRanges = []string{n.client.IP.String() + "/32"}
	}
	if s.Endpoints != nil {
		out.Endpoints = []*netns.NS{}
		for _, i := range s.Endpoints {
			out.Endpoints = append(out.Endpoints, n.be[i])
		}
	}
	for _, i := range s.Local {
		out.Local = append(out.Local, n.be[i])
	}
	return out
}

func TestConformance(t *testing.T) {
	netns.RequireRoot(t)
	for _, m := range append(append([]mode{}, modes...), userspaceMode()) {
		t.Run(m.Name, func(t *testing.T) { runConformance(t, m) })
	}
	// Socket LB for ClusterIPs from pods and the node (in the attach cgroup), the
	// nftables mode's rules for the rest and for the external host (outside it).
	t.Run("ebpf", func(t *testing.T) { runConformance(t, newEBPFNode(t).mode()) })
}

func runConformance(t *testing.T, m mode) {
	{
		n := newConformanceNode(t, m)
		for _, sc := range conformance.Scenarios() {
			for _, s := range sc.Services {
				n.apply(s.Name, n.service(s).manifest())
			}
		}
		n.start()
		n.askUntilAll(n.client, "10.96.1.2:80", n.names(n.be[2:]...))
		conformance.RunKernel(t, n.kernelNode(), conformance.KnownDifferences[m.ProxyMode])
		if m.ebpf != nil {
			t.Run("pod's ClusterIP flows socket-LB'd", func(t *testing.T) {
				noDNATedFlows(t, n.env.Node, n.pod.IP.String(), "10.96.1.1", conformance.TCPPort)
				noDNATedFlows(t, n.env.Node, n.pod.IP.String(), "10.96.1.1", conformance.UDPPort)
			})
		}
		t.Run("health-check node port of eTP Local", func(t *testing.T) {
			n.eventually("200 with a local endpoint", func() error {
				return n.expectHealth(fmt.Sprintf("http://%s:32105/", n.client.NodeIP), 200, `"localEndpoints": 1`)
			})
			n.eventually("503 without one", func() error {
				return n.expectHealth(fmt.Sprintf("http://%s:32106/", n.client.NodeIP), 503, `"localEndpoints": 0`)
			})
		})
		t.Run("hairpin", func(t *testing.T) { n.hairpin(t) })
		t.Run("ClientIP affinity", func(t *testing.T) { n.affinity(t) })
		// A socket-LB'd UDP socket is connected to the endpoint itself: it never
		// holds an un-NATed flow, and one to a removed endpoint is destroyed
		// (ebpf.TestChangeIsAppliedAndRemovedBackendSocketsDestroyed), not
		// moved to the replacement.
		if m.ebpf == nil {
			t.Run("UDP port gaining its first endpoint", func(t *testing.T) { n.udpGainsEndpoint(t) })
			t.Run("UDP endpoint replaced", func(t *testing.T) { n.udpReplaced(t) })
		}
		t.Run("node zone label change under PreferClose", func(t *testing.T) { n.zoneChange(t) })
		t.Run("Service deleted", func(t *testing.T) { n.deleted(t) })
	}
	// The relay masquerades everything anyway; socket LB NATs nothing, so
	// masqueradeAll reaches only what the nftables part handles.
	if m.ProxyMode != "userspace" && m.ebpf == nil {
		t.Run("masqueradeAll", func(t *testing.T) { runMasqueradeAll(t, m) })
	}
}

// runMasqueradeAll runs conformance.MasqueradeAllScenarios on a node of its own
// started with --masquerade-all (a node-wide setting).
func runMasqueradeAll(t *testing.T, m mode) {
	n := newConformanceNode(t, m)
	scs := conformance.MasqueradeAllScenarios()
	for _, sc := range scs {
		for _, s := range sc.Services {
			n.apply(s.Name, n.service(s).manifest())
		}
	}
	n.start("--masquerade-all")
	n.askUntilAll(n.client, "10.96.2.1:80", n.names(n.be[2:]...))
	conformance.RunKernelOf(t, n.kernelNode(), scs, conformance.KnownDifferences[m.ProxyMode])
}

func newConformanceNode(t *testing.T, m mode) *conformanceNode {
	c := newCluster(t, m, conformance.Backends)
	n := &conformanceNode{cluster: c, be: c.backends}
	n.pod = c.env.AddBackend("pod")
	return n
}

// from is where a probe in w connects from: in the ebpf mode, pods and the node
// connect from inside the attach cgroup, the external host from outside.
func (n *conformanceNode) from(w conformance.Where) conformance.Asker {
	if e := n.m.ebpf; e != nil && w != conformance.FromExternal {
		return cgroupClient{e: e, ns: n.client3(w)}
	}
	return n.client3(w)
}

func (n *conformanceNode) client3(w conformance.Where) *netns.NS {
	switch w {
	case conformance.FromPod:
		return n.pod
	case conformance.FromNode:
		return n.env.Node
	}
	return n.client
}

// kernelNode places the table on this harness's namespaces: NODE is the node's
// address on the client's link (the external link for the node itself, which is
// also the address the node connects from: its default route is on that link).
// A masqueraded or relayed connection reaches backend i from the node's address
// on i's link.
func (n *conformanceNode) kernelNode() conformance.Node {
	return conformance.Node{
		Mode: n.m.ProxyMode,
		ClientIP: func(w conformance.Where) string {
			if w == conformance.FromNode {
				return n.client.NodeIP.String()
			}
			return n.client3(w).IP.String()
		},
		NodeIPToward: func(i int) string { return n.be[i].NodeIP.String() },
		From:         n.from,
		NodeIP: func(w conformance.Where) string {
			if w == conformance.FromPod {
				return n.pod.NodeIP.String()
			}
			return n.client.NodeIP.String()
		},
		Backend: func(i int) string { return n.be[i].Name },
	}
}

// hairpin: an endpoint on this node (backend 0) connecting to its own Service reaches every
// endpoint; the one it reaches is itself sees it masqueraded (the node's address
// on its link), the others see its own address, as in kube-proxy. userspace's
// relay shows every endpoint the node's address (conformance.ModeSeen). In the
// ebpf mode the endpoint is a pod in the attach cgroup: socket LB connects it to
// itself directly, so it sees its own address too (no NAT, nothing to undo).
func (n *conformanceNode) hairpin(t *testing.T) {
	self := n.be[0] // on this node, an endpoint of "etp" (10.96.1.5) with be[2]
	want := map[string]string{}
	for _, be := range []*netns.NS{n.be[0], n.be[2]} {
		want[be.Name] = self.IP.String()
		if n.m.ebpf == nil && (be == self || conformance.ModeSeen[n.m.ProxyMode] == conformance.SeenNode) {
			want[be.Name] = be.NodeIP.String()
		}
	}
	if e := n.m.ebpf; e != nil {
		_ = e.inCgroup(func() error { askSourcesOver(t, self, "tcp4", "10.96.1.5:80", want); return nil })
		return
	}
	askSourcesOver(t, self, "tcp4", "10.96.1.5:80", want)
}

func (n *conformanceNode) affinity(t *testing.T) {
	n.apply("sticky", service{Name: "sticky", ClusterIP: "10.96.1.20", Port: 80, Affinity: true, Endpoints: n.be[2:]}.manifest())
	for _, w := range []conformance.Where{conformance.FromPod, conformance.FromNode, conformance.FromExternal} {
		from := n.from(w)
		var first string
		n.eventually("first answer", func() (err error) {
			first, err = from.AskTCP("10.96.1.20:80", time.Second)
			return err
		})
		for i := 0; i < 10; i++ {
			if got, err := from.AskTCP("10.96.1.20:80", time.Second); err != nil || got != first {
				t.Fatalf("from %s, connection %d: %q (%v), want %q every time", w, i, got, err, first)
			}
		}
	}
}

// udpGainsEndpoint keeps one client socket (as a resolver does) sending to a UDP
// Service without endpoints, then gives it one: the conntrack entry recorded
// un-NATed must go, or the client stays black-holed until it times out.
func (n *conformanceNode) udpGainsEndpoint(t *testing.T) {
	dns := service{Name: "gain", ClusterIP: "10.96.1.21", Port: 53, Protocol: "UDP", Endpoints: []*netns.NS{}}
	n.apply(dns.Name, dns.manifest())
	conn, err := n.pod.DialFrom("udp4", n.pod.IP.String()+":40121", "10.96.1.21:53", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n.eventually("the empty Service rejects", func() error {
		if got, err := netns.AskConn(conn, 300*time.Millisecond); err == nil {
			return fmt.Errorf("answer %q without endpoints", got)
		}
		return nil
	})
	dns.Endpoints = n.be[2:3]
	n.apply(dns.Name, dns.manifest())
	n.eventually("answer on the same socket", func() error { return answeredBy(conn, n.be[2]) })
}

func (n *conformanceNode) udpReplaced(t *testing.T) {
	dns := service{Name: "repl", ClusterIP: "10.96.1.22", Port: 53, Protocol: "UDP", Endpoints: n.be[2:3]}
	n.apply(dns.Name, dns.manifest())
	conn, err := n.pod.DialFrom("udp4", n.pod.IP.String()+":40122", "10.96.1.22:53", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n.eventually("answer from the first endpoint", func() error { return answeredBy(conn, n.be[2]) })
	dns.Endpoints = n.be[3:4]
	n.apply(dns.Name, dns.manifest())
	n.eventually("answer from the replacement on the same socket", func() error { return answeredBy(conn, n.be[3]) })
}

func answeredBy(conn net.Conn, want *netns.NS) error {
	got, err := netns.AskConn(conn, 300*time.Millisecond)
	if err != nil {
		return err
	}
	if got != want.Name {
		return fmt.Errorf("answer from %q, want %q", got, want.Name)
	}
	return nil
}

// zoneChange: endpoints hinted for zones z1 and z2; the node's zone label
// decides which one ClusterIP traffic goes to, and changing the label moves it.
func (n *conformanceNode) zoneChange(t *testing.T) {
	zoned := service{Name: "zoned", ClusterIP: "10.96.1.23", Port: 80, Endpoints: n.be[2:4],
		Zones: map[*netns.NS]string{n.be[2]: "z1", n.be[3]: "z2"}}
	n.apply("node", nodeManifest("z1"))
	n.apply(zoned.Name, zoned.manifest())
	pod := n.from(conformance.FromPod)
	ask := func() (string, error) { return pod.AskTCP("10.96.1.23:80", time.Second) }
	n.askWithUntilAll("10.96.1.23:80", n.names(n.be[2]), ask)
	n.apply("node", nodeManifest("z2"))
	n.eventually("traffic follows the node's new zone", func() error {
		got, err := ask()
		if err != nil {
			return err
		}
		if got != n.be[3].Name {
			return fmt.Errorf("answer from %q, want %q (zone z2)", got, n.be[3].Name)
		}
		return nil
	})
	n.askWithUntilAll("10.96.1.23:80", n.names(n.be[3]), ask)
}

func nodeManifest(zone string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n    topology.kubernetes.io/zone: %s\n", nodeName, zone)
}

// deleted: once the Service is gone its address is no Service at all: nothing
// rewrites it, so no endpoint answers.
func (n *conformanceNode) deleted(t *testing.T) {
	gone := service{Name: "gone", ClusterIP: "10.96.1.24", Port: 80, Endpoints: n.be[2:]}
	n.apply(gone.Name, gone.manifest())
	pod := n.from(conformance.FromPod)
	n.askWithUntilAll("10.96.1.24:80", n.names(n.be[2:]...), func() (string, error) { return pod.AskTCP("10.96.1.24:80", time.Second) })
	if err := os.Remove(n.dir + "/" + gone.Name + ".yaml"); err != nil {
		t.Fatal(err)
	}
	n.eventually("no endpoint answers a deleted Service", func() error {
		if got, err := pod.AskTCP("10.96.1.24:80", 500*time.Millisecond); err == nil {
			return fmt.Errorf("answer from %q", got)
		}
		return nil
	})
}
