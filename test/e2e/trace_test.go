//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
	"kproxy.dev/kproxy/internal/trace"
)

// TestTraceAgreesWithRealConnections runs `kproxy trace` against the rules kproxy
// wrote into the node's kernel and checks its answer against where real
// connections go in the same namespace.
func TestTraceAgreesWithRealConnections(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 3)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, NodePort: 30080, Endpoints: c.backends}.manifest())
		c.apply("one", service{Name: "one", ClusterIP: "10.96.0.13", Port: 80, Endpoints: c.backends[:1]}.manifest())
		c.apply("empty", service{Name: "empty", ClusterIP: "10.96.0.12", Port: 80, Endpoints: []*netns.NS{}}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		c.askUntilAll(c.client, "10.96.0.13:80", c.names(c.backends[0]))

		all := c.endpoints(c.backends...)
		fromClient := []string{"--from", c.client.IP.String(), "--in-interface", c.client.NodeLink}

		r := c.trace(append(fromClient, "--to", "10.96.0.10:80", "--live")...)
		c.expectCandidates(r, all)
		landed := c.answerEndpoint("10.96.0.10:80")
		if !all[landed] {
			t.Errorf("a real connection went to %s, not one of the traced candidates %v", landed, all)
		}
		if r.Live == nil || r.Live.Total == 0 {
			t.Errorf("--live found no conntrack entries after %d connections: %+v", 20, r.Live)
		} else {
			for _, lt := range r.Live.Endpoints {
				if !all[lt.Endpoint] {
					t.Errorf("--live: connections went to %s, not a traced candidate", lt.Endpoint)
				}
			}
		}

		r = c.trace(append(fromClient, "--to", "10.96.0.13:80")...)
		one := c.answerEndpoint("10.96.0.13:80")
		if r.Verdict.Kind != "dnat" || r.Verdict.Endpoint != one {
			t.Errorf("single-endpoint Service: traced %+v, a real connection went to %s", r.Verdict, one)
		}

		r = c.trace(append(fromClient, "--to", fmt.Sprintf("%s:30080", c.client.NodeIP))...)
		c.expectCandidates(r, all)
		if !r.Masquerade {
			t.Errorf("NodePort from outside: traced without masquerade, want masqueraded")
		}

		// The node itself (OUTPUT path).
		r = c.trace("--from", c.client.NodeIP.String(), "--to", "10.96.0.13:80")
		if r.Verdict.Endpoint != one {
			t.Errorf("from the node: traced %+v, want DNAT to %s", r.Verdict, one)
		}

		r = c.trace(append(fromClient, "--to", "10.96.0.12:80")...)
		if _, err := c.client.AskTCP("10.96.0.12:80", 2*time.Second); err == nil {
			t.Errorf("a Service without endpoints answered")
		}
		if r.Verdict.Kind != "reject" {
			t.Errorf("Service without endpoints: traced %+v, want reject (connections are refused)", r.Verdict)
		}

		r = c.trace(append(fromClient, "--to", "10.0.0.99:22")...)
		if r.Verdict.Kind != "accept" {
			t.Errorf("not a Service: traced %+v, want accept", r.Verdict)
		}
	})
}

// TestTraceShowsAffinityInForce: once a client has connected to a ClientIP
// affinity Service, the trace (reading xt_recent lists or nftables affinity sets)
// sends it to the endpoint that answered, while a new client still has every
// endpoint as a candidate.
func TestTraceShowsAffinityInForce(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 3)
		c.apply("sticky", service{Name: "sticky", ClusterIP: "10.96.0.11", Port: 80, Affinity: true, Endpoints: c.backends}.manifest())
		c.start()
		c.eventually("first answer", func() error {
			_, err := c.client.AskTCP("10.96.0.11:80", time.Second)
			return err
		})
		pinned := c.answerEndpoint("10.96.0.11:80")
		r := c.trace("--from", c.client.IP.String(), "--in-interface", c.client.NodeLink, "--to", "10.96.0.11:80")
		if r.Verdict.Kind != "dnat" || r.Verdict.Endpoint != pinned {
			t.Errorf("pinned client: traced %+v, its connections go to %s", r.Verdict, pinned)
		}
		found := false
		for _, a := range r.Affinity {
			found = found || (a.Pinned && a.Endpoint == pinned)
		}
		if !found {
			t.Errorf("affinity %+v: want the client pinned to %s", r.Affinity, pinned)
		}
		r = c.trace("--from", "192.168.250.9", "--in-interface", c.client.NodeLink, "--to", "10.96.0.11:80")
		c.expectCandidates(r, c.endpoints(c.backends...))
	})
}

// trace runs kproxy trace --json in the node namespace.
func (c *cluster) trace(args ...string) *trace.Result {
	c.t.Helper()
	out := c.runKproxy(append([]string{"trace", "--mode", c.m.ProxyMode, "--json"}, args...)...)
	var r trace.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		c.t.Fatalf("kproxy trace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &r
}

// endpoints returns the backends' "ip:port" addresses.
func (c *cluster) endpoints(bs ...*netns.NS) map[string]bool {
	out := map[string]bool{}
	for _, b := range bs {
		out[netip.AddrPortFrom(b.IP, backendPort).String()] = true
	}
	return out
}

// answerEndpoint makes one real connection and returns the endpoint that answered.
func (c *cluster) answerEndpoint(addr string) string {
	c.t.Helper()
	name, err := c.client.AskTCP(addr, 2*time.Second)
	if err != nil {
		c.t.Fatalf("connecting to %s: %v", addr, err)
	}
	for _, b := range c.backends {
		if b.Name == name {
			return netip.AddrPortFrom(b.IP, backendPort).String()
		}
	}
	c.t.Fatalf("%s answered %q, not a backend", addr, name)
	return ""
}

// expectCandidates checks a DNAT verdict over exactly want, equally likely.
func (c *cluster) expectCandidates(r *trace.Result, want map[string]bool) {
	c.t.Helper()
	var got []string
	for _, cand := range r.Candidates {
		got = append(got, cand.Endpoint)
		if math.Abs(cand.Probability-1/float64(len(want))) > 1e-3 {
			c.t.Errorf("candidate %s: probability %v, want %v", cand.Endpoint, cand.Probability, 1/float64(len(want)))
		}
		if !want[cand.Endpoint] {
			c.t.Errorf("candidate %s is not an endpoint", cand.Endpoint)
		}
	}
	sort.Strings(got)
	if r.Verdict.Kind != "dnat" || len(got) != len(want) {
		c.t.Errorf("traced %s with candidates %v, want DNAT over %v\nnotes: %v", r.Verdict.Summary, got, want, r.Notes)
	}
}

// TestTraceComputesSourceHash: with the sh scheduler (nftables mode) the trace
// computes the kernel's jhash of the client address and names the one endpoint
// that client always reaches.
func TestTraceComputesSourceHash(t *testing.T) {
	netns.RequireRoot(t)
	c := newCluster(t, nftablesMode(), 3)
	yaml := service{Name: "sh", ClusterIP: "10.96.0.14", Port: 80, Endpoints: c.backends}.manifest()
	yaml = strings.Replace(yaml, "  name: sh\n  namespace: default\n",
		"  name: sh\n  namespace: default\n  annotations:\n    kproxy.dev/scheduler: sh\n", 1)
	c.apply("sh", yaml)
	c.start()
	c.eventually("first answer", func() error {
		_, err := c.client.AskTCP("10.96.0.14:80", time.Second)
		return err
	})
	r := c.trace("--from", c.client.IP.String(), "--in-interface", c.client.NodeLink, "--to", "10.96.0.14:80")
	for i := 0; i < 5; i++ {
		if got := c.answerEndpoint("10.96.0.14:80"); r.Verdict.Endpoint != got {
			t.Fatalf("traced %+v (notes %v), a real connection reached %s", r.Verdict, r.Notes, got)
		}
	}
}

// TestTraceSeesAFirewallThatDisagrees: a foreign rule drops forwarded traffic to
// one endpoint. The trace shows that candidate as DNATed then dropped, and real
// connections that land there indeed fail.
func TestTraceSeesAFirewallThatDisagrees(t *testing.T) {
	forEachMode(t, func(t *testing.T, m mode) {
		c := newCluster(t, m, 3)
		c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
		c.start()
		c.askUntilAll(c.client, "10.96.0.10:80", c.names(c.backends...))
		blocked := c.backends[0]
		if m.ProxyMode == "nftables" {
			c.env.Node.MustRun(t, "nft", "add table inet fw; add chain inet fw blocker { type filter hook forward priority 0; policy accept; }; "+
				"add rule inet fw blocker ip daddr "+blocked.IP.String()+" tcp dport 8080 drop")
		} else {
			c.env.Node.MustRun(t, m.Name, "-I", "FORWARD", "-d", blocked.IP.String(), "-p", "tcp", "--dport", "8080", "-j", "DROP")
		}
		r := c.trace("--from", c.client.IP.String(), "--in-interface", c.client.NodeLink, "--to", "10.96.0.10:80")
		dropped := netip.AddrPortFrom(blocked.IP, backendPort).String()
		verdicts := map[string]string{}
		for _, cand := range r.Candidates {
			verdicts[cand.Endpoint] = cand.Verdict
		}
		if r.Verdict.Kind != "mixed" || verdicts[dropped] != "drop" || len(verdicts) != 3 {
			t.Errorf("traced %s with %v, want %s dropped and the others DNATed", r.Verdict.Summary, verdicts, dropped)
		}
		failed := 0
		for i := 0; i < 15; i++ {
			name, err := c.client.AskTCP("10.96.0.10:80", 300*time.Millisecond)
			switch {
			case err != nil:
				failed++
			case name == blocked.Name:
				t.Errorf("a connection reached %s past the DROP rule", name)
			}
		}
		if failed == 0 {
			t.Errorf("no connection of 15 failed, but the trace says a third are dropped")
		}
	})
}
