//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// The cross-mode conformance suite: one table of Service scenarios, each asserting
// the same observable outcome in every mode, from the three places that matter: a
// pod behind the node, the node itself, and an external host reaching the node.
// All static scenarios share one node per mode (distinct Service addresses); the
// scenarios that change something run one after another on the same node.

// where a probe starts.
type where int

const (
	fromPod where = iota
	fromNode
	fromExternal
)

func (w where) String() string { return [...]string{"pod", "node", "external"}[w] }

// outcome is what a connection attempt must see.
type outcome struct {
	// reach names the backends (indexes into conformanceNode.be) that must all
	// answer, and no other.
	reach []int
	// refused: rejected at once (ECONNREFUSED); dropped: no answer at all.
	refused, dropped bool
}

// probe is one connection attempt and its expected outcome.
type probe struct {
	from where
	// addr is the destination; "NODE" in it stands for the node's address as
	// seen from the client.
	addr string
	udp  bool
	want outcome
}

// scenario is one row of the table.
type scenario struct {
	name     string
	services func(n *conformanceNode) []service
	probes   []probe
}

// conformanceNode is one node running kproxy with five backends (be[0..1] on this
// node for the policies that need local endpoints, be[2..4] elsewhere), a pod
// that is not an endpoint, an external client and a client outside every
// loadBalancerSourceRanges.
type conformanceNode struct {
	*cluster
	be     []*netns.NS
	pod    *netns.NS
	denied *netns.NS
}

var reachAll = []int{2, 3, 4}

func conformanceScenarios() []scenario {
	return []scenario{{
		name: "ClusterIP with two ports",
		services: func(n *conformanceNode) []service {
			return []service{
				{Name: "multi-http", ClusterIP: "10.96.1.1", Port: 80, Endpoints: n.be[2:]},
				{Name: "multi-dns", ClusterIP: "10.96.1.1", Port: 53, Protocol: "UDP", Endpoints: n.be[2:]},
			}
		},
		probes: everywhere("10.96.1.1:80", false, outcome{reach: reachAll}, "10.96.1.1:53", true, outcome{reach: reachAll}),
	}, {
		name: "NodePort",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "np", ClusterIP: "10.96.1.2", Port: 80, NodePort: 30102, Endpoints: n.be[2:]}}
		},
		probes: everywhere("NODE:30102", false, outcome{reach: reachAll}),
	}, {
		name: "externalIPs",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "ext", ClusterIP: "10.96.1.3", Port: 80, ExternalIP: "192.0.2.103", Endpoints: n.be[2:]}}
		},
		probes: everywhere("192.0.2.103:80", false, outcome{reach: reachAll}),
	}, {
		name: "LoadBalancer with loadBalancerSourceRanges",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "lbsr", ClusterIP: "10.96.1.4", Port: 80, NodePort: 30104, LoadBalancerIP: "203.0.113.104",
				SourceRanges: []string{n.client.IP.String() + "/32"}, Endpoints: n.be[2:]}}
		},
		probes: []probe{
			{from: fromExternal, addr: "203.0.113.104:80", want: outcome{reach: reachAll}},
			{from: fromPod, addr: "10.96.1.4:80", want: outcome{reach: reachAll}},
		},
	}, {
		name: "externalTrafficPolicy Local with a local endpoint",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "etp", ClusterIP: "10.96.1.5", Port: 80, NodePort: 30105, HealthCheckNodePort: 32105,
				Local: n.be[:1], Endpoints: []*netns.NS{n.be[0], n.be[2]}}}
		},
		probes: []probe{
			{from: fromExternal, addr: "NODE:30105", want: outcome{reach: []int{0}}},
			{from: fromPod, addr: "10.96.1.5:80", want: outcome{reach: []int{0, 2}}},
		},
	}, {
		name: "externalTrafficPolicy Local without a local endpoint",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "etp-none", ClusterIP: "10.96.1.6", Port: 80, NodePort: 30106, HealthCheckNodePort: 32106,
				Endpoints: n.be[2:]}}
		},
		probes: []probe{
			{from: fromExternal, addr: "NODE:30106", want: outcome{dropped: true}},
			{from: fromPod, addr: "10.96.1.6:80", want: outcome{reach: reachAll}},
			// In-cluster clients of the external address short-circuit to the
			// cluster-wide endpoints, as in kube-proxy (issue 12, item 3).
			{from: fromPod, addr: "NODE:30106", want: outcome{reach: reachAll}},
			{from: fromNode, addr: "NODE:30106", want: outcome{reach: reachAll}},
		},
	}, {
		name: "internalTrafficPolicy Local",
		services: func(n *conformanceNode) []service {
			return []service{
				{Name: "itp", ClusterIP: "10.96.1.7", Port: 80, InternalLocal: true, Local: n.be[:2], Endpoints: n.be},
				{Name: "itp-none", ClusterIP: "10.96.1.8", Port: 80, InternalLocal: true, Endpoints: n.be[2:]},
			}
		},
		probes: []probe{
			{from: fromPod, addr: "10.96.1.7:80", want: outcome{reach: []int{0, 1}}},
			{from: fromNode, addr: "10.96.1.7:80", want: outcome{reach: []int{0, 1}}},
			{from: fromPod, addr: "10.96.1.8:80", want: outcome{dropped: true}},
		},
	}, {
		name: "only terminating endpoints",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "term", ClusterIP: "10.96.1.9", Port: 80, Terminating: true, Endpoints: n.be[2:]}}
		},
		probes: everywhere("10.96.1.9:80", false, outcome{reach: reachAll}),
	}, {
		name: "no endpoints",
		services: func(n *conformanceNode) []service {
			return []service{{Name: "none", ClusterIP: "10.96.1.10", Port: 80, NodePort: 30110, Endpoints: []*netns.NS{}}}
		},
		probes: append(everywhere("10.96.1.10:80", false, outcome{refused: true}),
			probe{from: fromExternal, addr: "NODE:30110", want: outcome{refused: true}}),
	}}
}

// everywhere makes the same probes from the pod, the node and the external host;
// pairs of (addr, udp, outcome) may repeat.
func everywhere(args ...any) []probe {
	var out []probe
	for i := 0; i+2 < len(args); i += 3 {
		for _, w := range []where{fromPod, fromNode, fromExternal} {
			out = append(out, probe{from: w, addr: args[i].(string), udp: args[i+1].(bool), want: args[i+2].(outcome)})
		}
	}
	return out
}

func TestConformance(t *testing.T) {
	netns.RequireRoot(t)
	for _, m := range append(append([]mode{}, modes...), userspaceMode()) {
		t.Run(m.Name, func(t *testing.T) { conformance(t, m) })
	}
}

func conformance(t *testing.T, m mode) {
	{
		n := newConformanceNode(t, m)
		for _, sc := range conformanceScenarios() {
			for _, s := range sc.services(n) {
				n.apply(s.Name, s.manifest())
			}
		}
		n.start()
		n.askUntilAll(n.client, "10.96.1.2:80", n.names(n.be[2:]...))
		for _, sc := range conformanceScenarios() {
			t.Run(sc.name, func(t *testing.T) {
				for _, p := range sc.probes {
					n.check(t, p)
				}
			})
		}
		t.Run("health-check node port of eTP Local", func(t *testing.T) {
			n.eventually("200 with a local endpoint", func() error {
				return n.expectHealth(fmt.Sprintf("http://%s:32105/", n.client.NodeIP), 200, `"localEndpoints":1`)
			})
			n.eventually("503 without one", func() error {
				return n.expectHealth(fmt.Sprintf("http://%s:32106/", n.client.NodeIP), 503, `"localEndpoints":0`)
			})
		})
		t.Run("ClientIP affinity", func(t *testing.T) { n.affinity(t) })
		t.Run("UDP port gaining its first endpoint", func(t *testing.T) { n.udpGainsEndpoint(t) })
		t.Run("UDP endpoint replaced", func(t *testing.T) { n.udpReplaced(t) })
		t.Run("node zone label change under PreferClose", func(t *testing.T) { n.zoneChange(t) })
		t.Run("Service deleted", func(t *testing.T) { n.deleted(t) })
	}
}

func newConformanceNode(t *testing.T, m mode) *conformanceNode {
	c := newCluster(t, m, 5)
	n := &conformanceNode{cluster: c, be: c.backends}
	n.pod = c.env.AddBackend("pod")
	n.denied = c.env.AddClient("denied")
	return n
}

func (n *conformanceNode) client3(w where) *netns.NS {
	switch w {
	case fromPod:
		return n.pod
	case fromNode:
		return n.env.Node
	}
	return n.client
}

// target resolves NODE to the node's address on the client's link (the node's
// own address on the external link for the node itself).
func (n *conformanceNode) target(p probe) string {
	if len(p.addr) > 5 && p.addr[:5] == "NODE:" {
		ip := n.client.NodeIP
		if p.from == fromPod {
			ip = n.pod.NodeIP
		}
		return ip.String() + p.addr[4:]
	}
	return p.addr
}

func (n *conformanceNode) check(t *testing.T, p probe) {
	t.Helper()
	from, addr := n.client3(p.from), n.target(p)
	label := fmt.Sprintf("from %s to %s", p.from, addr)
	ask := from.AskTCP
	if p.udp {
		ask = from.AskUDP
	}
	switch {
	case p.want.refused:
		start := time.Now()
		_, err := ask(addr, 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 2*time.Second {
			t.Errorf("%s: %v after %v, want refused at once", label, err, time.Since(start))
		}
	case p.want.dropped:
		got, err := ask(addr, 700*time.Millisecond)
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: answer %q err %v, want the packet dropped", label, got, err)
		}
	default:
		want := map[string]bool{}
		for _, i := range p.want.reach {
			want[n.be[i].Name] = true
		}
		seen := map[string]bool{}
		err := netns.Eventually(t.Context(), 15*time.Second, func() error {
			for i := 0; i < 12; i++ {
				got, err := ask(addr, time.Second)
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
		if err != nil {
			t.Errorf("%s: %v", label, err)
		}
	}
}

func (n *conformanceNode) affinity(t *testing.T) {
	n.apply("sticky", service{Name: "sticky", ClusterIP: "10.96.1.20", Port: 80, Affinity: true, Endpoints: n.be[2:]}.manifest())
	for _, w := range []where{fromPod, fromNode, fromExternal} {
		from := n.client3(w)
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
	n.askUntilAll(n.pod, "10.96.1.23:80", n.names(n.be[2]))
	n.apply("node", nodeManifest("z2"))
	n.eventually("traffic follows the node's new zone", func() error {
		got, err := n.pod.AskTCP("10.96.1.23:80", time.Second)
		if err != nil {
			return err
		}
		if got != n.be[3].Name {
			return fmt.Errorf("answer from %q, want %q (zone z2)", got, n.be[3].Name)
		}
		return nil
	})
	n.askUntilAll(n.pod, "10.96.1.23:80", n.names(n.be[3]))
}

func nodeManifest(zone string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n    topology.kubernetes.io/zone: %s\n", nodeName, zone)
}

// deleted: once the Service is gone its address is no Service at all: nothing
// rewrites it, so no endpoint answers.
func (n *conformanceNode) deleted(t *testing.T) {
	gone := service{Name: "gone", ClusterIP: "10.96.1.24", Port: 80, Endpoints: n.be[2:]}
	n.apply(gone.Name, gone.manifest())
	n.askUntilAll(n.pod, "10.96.1.24:80", n.names(n.be[2:]...))
	if err := os.Remove(n.dir + "/" + gone.Name + ".yaml"); err != nil {
		t.Fatal(err)
	}
	n.eventually("no endpoint answers a deleted Service", func() error {
		if got, err := n.pod.AskTCP("10.96.1.24:80", 500*time.Millisecond); err == nil {
			return fmt.Errorf("answer from %q", got)
		}
		return nil
	})
}
