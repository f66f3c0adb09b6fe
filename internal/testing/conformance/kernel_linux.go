//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// Asker makes one connection and returns the answering backend's name
// (*netns.NS is one).
type Asker interface {
	AskTCP(addr string, timeout time.Duration) (string, error)
	AskUDP(addr string, timeout time.Duration) (string, error)
}

// SourceAsker also learns the client address the answering server saw
// (*netns.NS is one, with servers of netns.NS.ServeTCP and ServeUDP).
type SourceAsker interface {
	AskTCPSource(network, addr string, timeout time.Duration) (name, src string, err error)
	AskUDPSource(network, addr string, timeout time.Duration) (name, src string, err error)
}

// Node is what the kernel runner needs of a test topology: where each place
// connects from and each backend's name as its server answers.
type Node struct {
	// From returns where a probe starts.
	From func(Where) Asker
	// NodeIP returns the node's address as a client in w sees it.
	NodeIP func(w Where) string
	// Backend is backend i's name (its server's answer).
	Backend func(i int) string
	// Mode is the proxy mode, for the table's per-mode client addresses
	// (ModeSeen).
	Mode string
	// ClientIP is the address a client in w connects from, and NodeIPToward
	// the node's address on the link to backend i: what an endpoint sees of a
	// masqueraded or relayed connection. With both set, every answer's client
	// address is checked, and every From must be a SourceAsker.
	ClientIP     func(w Where) string
	NodeIPToward func(i int) string
}

// seenAddr is the address an endpoint, backend i, sees of a client in w.
func (n Node) seenAddr(s Seen, w Where, i int) string {
	if s == SeenNode {
		return n.NodeIPToward(i)
	}
	return n.ClientIP(w)
}

// asker is how a probe asks: the answering backend's name and, when sources are
// checked, the client address it saw ("" otherwise).
type asker func(addr string, timeout time.Duration) (name, src string, err error)

func (n Node) asker(p Probe) asker {
	from := n.From(p.From)
	if n.ClientIP != nil && n.NodeIPToward != nil {
		sa := from.(SourceAsker) // RunKernel checked
		if p.UDP {
			return func(a string, t time.Duration) (string, string, error) { return sa.AskUDPSource("udp4", a, t) }
		}
		return func(a string, t time.Duration) (string, string, error) { return sa.AskTCPSource("tcp4", a, t) }
	}
	ask := from.AskTCP
	if p.UDP {
		ask = from.AskUDP
	}
	return func(a string, t time.Duration) (string, string, error) {
		name, err := ask(a, t)
		return name, "", err
	}
}

// RunKernel makes every probe of the table with real connections, skipping
// nothing: a mode's known differences must still differ.
func RunKernel(t *testing.T, n Node, known []Difference) {
	t.Helper()
	RunKernelOf(t, n, Scenarios(), known)
}

// RunKernelOf is RunKernel for the scenarios scs (MasqueradeAllScenarios on a
// node with masqueradeAll set).
func RunKernelOf(t *testing.T, n Node, scs []Scenario, known []Difference) {
	t.Helper()
	if n.ClientIP != nil && n.NodeIPToward != nil {
		for _, w := range []Where{FromPod, FromNode, FromExternal} {
			if _, ok := n.From(w).(SourceAsker); !ok {
				t.Fatalf("the client in %s (%T) cannot learn the address its server saw: not a SourceAsker", w, n.From(w))
			}
		}
	}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			for _, p := range sc.Probes {
				addr := p.Addr
				if strings.HasPrefix(addr, "NODE:") {
					addr = n.NodeIP(p.From) + addr[4:]
				}
				msg := n.checkKernel(t.Context(), p, addr)
				isKnown := false
				for _, d := range known {
					isKnown = isKnown || d == Difference{sc.Name, p.From, p.Addr}
				}
				switch {
				case isKnown && msg == "":
					t.Errorf("from %s to %s: listed as a known difference but conforms now: remove it from the list", p.From, addr)
				case isKnown:
					t.Logf("known difference, from %s to %s: %s", p.From, addr, msg)
				case msg != "":
					t.Errorf("from %s to %s: %s", p.From, addr, msg)
				}
			}
		})
	}
}

// checkKernel makes the probe's connections to addr and says how the outcome
// differs from the probe's, or "". Reach retries for up to 15 s until every
// wanted backend answered, each seeing the wanted client address (rules may
// still be on their way).
func (n Node) checkKernel(ctx context.Context, p Probe, addr string) string {
	ask, want := n.asker(p), p.WantIn(n.Mode)
	switch {
	case want.Refused:
		start := time.Now()
		_, _, err := ask(addr, 3*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 2*time.Second {
			return fmt.Sprintf("%v after %v, want refused at once", err, time.Since(start))
		}
	case want.Dropped:
		got, _, err := ask(addr, 700*time.Millisecond)
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Sprintf("answer %q err %v, want the packet dropped", got, err)
		}
	default:
		names, index := map[string]bool{}, map[string]int{}
		for _, i := range want.Reach {
			names[n.Backend(i)], index[n.Backend(i)] = true, i
		}
		seen := map[string]bool{}
		err := netns.Eventually(ctx, 15*time.Second, func() error {
			for i := 0; i < 12; i++ {
				got, src, err := ask(addr, time.Second)
				if err != nil {
					return err
				}
				if !names[got] {
					return fmt.Errorf("answer from %q, outside %v", got, keys(names))
				}
				if n.ClientIP != nil && n.NodeIPToward != nil {
					s := p.WantSeen(n.Mode)
					if w := n.seenAddr(s, p.From, index[got]); src != w {
						return fmt.Errorf("%s saw the client as %s, want %s (%s)", got, src, w, s)
					}
				}
				seen[got] = true
			}
			if len(seen) < len(names) {
				return fmt.Errorf("only %v answered, want %v", keys(seen), keys(names))
			}
			return nil
		})
		if err != nil {
			return err.Error()
		}
	}
	return ""
}

// CheckExternalPolicyLocalWithoutLocalEndpoint checks, on the real kernel, a
// Service with externalTrafficPolicy Local whose only endpoint is on another node
// and answers with the client address it sees (netns.NS.ServeClientAddr): pods
// and the node reaching nodePort (on the pod's node address) or externalIP:80 are
// served by that endpoint, pods with their own address; the outside client ext is
// dropped (it times out: no reset, so its load balancer moves on), as in
// kube-proxy. The node's addresses lie inside the cluster CIDR in these
// topologies, so the endpoint may see either the node's own source or its
// masqueraded one.
func CheckExternalPolicyLocalWithoutLocalEndpoint(t *testing.T, pod, node, ext *netns.NS, nodePort int, externalIP string) {
	t.Helper()
	podNodePort := fmt.Sprintf("%s:%d", pod.NodeIP, nodePort)
	external := externalIP + ":80"
	for _, c := range []struct {
		name string
		from *netns.NS
		addr string
		want string // the client address the endpoint sees; "" any
	}{
		{"pod to NodePort", pod, podNodePort, pod.IP.String()},
		{"pod to external IP", pod, external, pod.IP.String()},
		{"node to NodePort", node, podNodePort, ""},
		{"node to external IP", node, external, ""},
	} {
		got, err := c.from.AskTCP(c.addr, 2*time.Second)
		if err != nil || (c.want != "" && got != c.want) {
			t.Errorf("%s: endpoint saw %q (%v), want %s", c.name, got, err, c.want)
		}
	}
	for _, addr := range []string{fmt.Sprintf("%s:%d", ext.NodeIP, nodePort), external} {
		got, err := ext.AskTCP(addr, 700*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("outside client to %s: %q, %v; want dropped (timeout)", addr, got, err)
		}
	}
}
