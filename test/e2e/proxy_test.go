//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

func TestClusterIPAndNodePortReachEveryEndpoint(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 3)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, NodePort: 30080, Endpoints: c.backends}.manifest())
		c.start()
		want := c.names(c.backends...)
		c.askUntilAll(c.client, "10.96.0.10:80", want)
		c.askUntilAll(c.client, fmt.Sprintf("%s:30080", c.client.NodeIP), want)
		// From the node itself (OUTPUT path) too.
		c.askUntilAll(c.env.Node, "10.96.0.10:80", want)
		if m.LocalhostNodePorts {
			c.askUntilAll(c.env.Node, "127.0.0.1:30080", want)
		}
	})
}

func TestClientIPAffinityHolds(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 3)
		c.apply("sticky", service{Name: "sticky", ClusterIP: "10.96.0.11", Port: 80, Affinity: true, Endpoints: c.backends}.manifest())
		c.start()
		var first string
		c.eventually("first answer", func() (err error) {
			first, err = c.client.AskTCP("10.96.0.11:80", time.Second)
			return err
		})
		for i := 0; i < 20; i++ {
			got, err := c.client.AskTCP("10.96.0.11:80", time.Second)
			if err != nil || got != first {
				t.Fatalf("connection %d: got %q (%v), want %q every time", i, got, err, first)
			}
		}
	})
}

func TestServiceWithoutEndpointsIsRefused(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		c.apply("empty", service{Name: "empty", ClusterIP: "10.96.0.12", Port: 80, Endpoints: []*netns.NS{}}.manifest())
		// A working Service proves the rules are in place before we judge the empty one.
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		start := time.Now()
		_, err := c.client.AskTCP("10.96.0.12:80", 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("want connection refused, got %v after %s", err, time.Since(start))
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("refusal took %s: should be immediate", d)
		}
	})
}

func TestRemovedEndpointStopsReceivingTraffic(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 2)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends[:1]}.manifest())
		only := c.backends[0].Name
		c.eventually("only the remaining endpoint answers", func() error {
			for i := 0; i < 30; i++ {
				got, err := c.client.AskTCP("10.96.0.10:80", time.Second)
				if err != nil {
					return err
				}
				if got != only {
					return fmt.Errorf("answer %d from %q", i, got)
				}
			}
			return nil
		})
	})
}

func TestRestartKeepsEstablishedConnection(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 2)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		conn, err := c.client.Dial("tcp4", "10.96.0.10:80", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		first, err := netns.ReadLine(conn, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.stop()
		c.start()
		// Wait until the new process has synced: it serves metrics after its first sync.
		c.eventually("restarted kproxy answers /metrics", func() error {
			_, err := c.metrics()
			return err
		})
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		got, err := netns.AskConn(conn, time.Second)
		if err != nil || got != first {
			t.Fatalf("established connection after restart: got %q, %v; want %q", got, err, first)
		}
	})
}

func TestFlushedNATTableIsRepaired(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		m.Flush(t, c.env.Node)
		if _, err := c.client.AskTCP("10.96.0.10:80", 300*time.Millisecond); err == nil {
			t.Fatal("the Service still answers after the flush: the test would prove nothing")
		}
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
	})
}

func TestCleanupLeavesNothingBehind(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, NodePort: 30080, Endpoints: c.backends}.manifest())
		c.apply("empty", service{Name: "empty", ClusterIP: "10.96.0.12", Port: 80, Endpoints: []*netns.NS{}}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		c.stop()
		if left := m.Leftovers(t, c.env.Node); left == "" {
			t.Fatal("nothing to clean up before --cleanup: the test would prove nothing")
		}
		c.runKproxy("--cleanup")
		if left := m.Leftovers(t, c.env.Node); left != "" {
			t.Fatalf("left behind after --cleanup:\n%s", left)
		}
	})
}

func TestUDPClientSurvivesBackendReplacement(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 2)
		old, repl := c.backends[0], c.backends[1]
		c.apply("dns", service{Name: "dns", ClusterIP: "10.96.0.53", Port: 53, Protocol: "UDP", Endpoints: []*netns.NS{old}}.manifest())
		c.start()
		// One client socket throughout: the same conntrack flow, as a resolver's.
		conn, err := c.client.DialFrom("udp4", c.client.IP.String()+":40053", "10.96.0.53:53", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c.eventually("UDP answer from the first backend", func() error {
			got, err := netns.AskConn(conn, 300*time.Millisecond)
			if err != nil {
				return err
			}
			if got != old.Name {
				return fmt.Errorf("answer from %q", got)
			}
			return nil
		})
		c.apply("dns", service{Name: "dns", ClusterIP: "10.96.0.53", Port: 53, Protocol: "UDP", Endpoints: []*netns.NS{repl}}.manifest())
		c.eventually("UDP answer from the replacement on the same socket", func() error {
			got, err := netns.AskConn(conn, 300*time.Millisecond)
			if err != nil {
				return err
			}
			if got != repl.Name {
				return fmt.Errorf("answer from %q", got)
			}
			return nil
		})
	})
}

// TestHealthCheckNodePort checks the eTP=Local health check: 200 with the number of
// local endpoints while this node has one, 503 once it has none.
func TestHealthCheckNodePort(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		lb := service{Name: "lb", ClusterIP: "10.96.0.20", Port: 80, NodePort: 30090, HealthCheckNodePort: 32090,
			LocalEndpoints: true, Endpoints: c.backends}
		c.apply("lb", lb.manifest())
		c.start()
		url := fmt.Sprintf("http://%s:32090/", c.client.NodeIP)
		c.eventually("health check 200", func() error { return c.expectHealth(url, 200, `"localEndpoints": 1`) })
		// External traffic to the NodePort reaches the local endpoint.
		c.askUntilAll(c.client, fmt.Sprintf("%s:30090", c.client.NodeIP), c.names(c.backends...))
		lb.LocalEndpoints = false
		c.apply("lb", lb.manifest())
		c.eventually("health check 503", func() error { return c.expectHealth(url, 503, `"localEndpoints": 0`) })
	})
}

// TestUDPClientServedOnceEndpointsAppear sends from one UDP socket to a Service
// without endpoints, then gives it one: the client, which keeps its socket as
// resolvers do, must be served without waiting for any conntrack timeout.
func TestUDPClientServedOnceEndpointsAppear(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		dns := service{Name: "dns", ClusterIP: "10.96.0.53", Port: 53, Protocol: "UDP", Endpoints: []*netns.NS{}}
		c.apply("dns", dns.manifest())
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		conn, err := c.client.DialFrom("udp4", c.client.IP.String()+":40054", "10.96.0.53:53", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got, err := netns.AskConn(conn, 300*time.Millisecond); err == nil {
			t.Fatalf("answer %q from a Service without endpoints", got)
		}
		dns.Endpoints = c.backends
		c.apply("dns", dns.manifest())
		c.eventually("UDP answer on the same socket once the Service has an endpoint", func() error {
			got, err := netns.AskConn(conn, 300*time.Millisecond)
			if err != nil {
				return err
			}
			if got != c.backends[0].Name {
				return fmt.Errorf("answer from %q", got)
			}
			return nil
		})
	})
}

func TestExternalIPAndLoadBalancerSourceRanges(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 1)
		denied := c.env.AddClient("denied")
		c.apply("ext", service{Name: "ext", ClusterIP: "10.96.0.30", Port: 80, ExternalIP: "192.0.2.30", Endpoints: c.backends}.manifest())
		c.apply("lb", service{Name: "lb", ClusterIP: "10.96.0.31", Port: 80, NodePort: 30031, LoadBalancerIP: "203.0.113.31",
			SourceRanges: []string{c.client.IP.String() + "/32"}, Endpoints: c.backends}.manifest())
		c.start()
		want := c.names(c.backends...)
		c.askUntilAll(c.client, "192.0.2.30:80", want)
		c.askUntilAll(c.client, "203.0.113.31:80", want)
		// A source outside loadBalancerSourceRanges reaches the Service through its
		// ClusterIP (so its routing works) but not through the load-balancer IP.
		c.askUntilAll(denied, "10.96.0.31:80", want)
		if got, err := denied.AskTCP("203.0.113.31:80", 500*time.Millisecond); err == nil {
			t.Fatalf("source outside loadBalancerSourceRanges got an answer from %q", got)
		}
	})
}
