//go:build linux

package e2e

import (
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// mode is one proxy mode (or backend variant) the suite runs against.
type mode struct {
	// Name names the subtests.
	Name string
	// ProxyMode is the --proxy-mode value.
	ProxyMode string
	// Env is added to kproxy's environment.
	Env []string
	// Flush removes the mode's kernel state by hand, the way an administrator or
	// a firewall reload would, inside the node namespace.
	Flush func(t *testing.T, node *netns.NS)
	// Leftovers describes what of the mode remains in the node namespace; empty
	// means nothing (checked after --cleanup).
	Leftovers func(t *testing.T, node *netns.NS) string
	// LocalhostNodePorts is true when the mode serves NodePorts on 127.0.0.1.
	LocalhostNodePorts bool
	// Dump shows the mode's kernel state, logged when a test fails.
	Dump func(t *testing.T, node *netns.NS) string
	// Args, when set, returns extra kproxy arguments for the mode (before the
	// test's own).
	Args func(t *testing.T) []string
	// ebpf is the cgroup and bpffs of the ebpf mode (nil in other modes): pods
	// and the node connect from inside its cgroup.
	ebpf *ebpfNode
}

// modes lists every mode the suite covers; add an entry to cover a new one.
var modes = []mode{
	iptablesMode("nft"),
	iptablesMode("legacy"),
	nftablesMode(),
}

// userspaceMode relays in Go: no kernel NAT, the Service addresses go on the
// node's loopback. It is in the conformance table, not in every e2e test (it has
// no rules to flush or leave behind).
func userspaceMode() mode {
	return mode{Name: "userspace", ProxyMode: "userspace", LocalhostNodePorts: true,
		Dump: func(t *testing.T, node *netns.NS) string {
			out, _ := node.Run("ip", "addr")
			return out
		}}
}

// nftablesMode takes its sync periods from the shared --iptables-*sync-period
// flags, as kube-proxy's nftables mode does.
func nftablesMode() mode {
	return mode{
		Name:      "nftables",
		ProxyMode: "nftables",
		Flush: func(t *testing.T, node *netns.NS) {
			node.MustRun(t, "nft", "flush", "table", "ip", "kproxy")
		},
		Dump: func(t *testing.T, node *netns.NS) string {
			out, _ := node.Run("nft", "list", "ruleset")
			return out
		},
		Leftovers: func(t *testing.T, node *netns.NS) string {
			var left []string
			for _, l := range strings.Split(node.MustRun(t, "nft", "list", "tables"), "\n") {
				if strings.Contains(l, "kproxy") {
					left = append(left, l)
				}
			}
			return strings.Join(left, "\n")
		},
	}
}

func iptablesMode(backend string) mode {
	tool := "iptables-" + backend
	return mode{
		Name:      "iptables-" + backend,
		ProxyMode: "iptables",
		Env:       []string{"KPROXY_IPTABLES_BACKEND=" + backend},
		// As kube-proxy's iptables mode (localhostNodePorts defaults to true).
		LocalhostNodePorts: true,
		Flush: func(t *testing.T, node *netns.NS) {
			node.MustRun(t, tool, "-t", "nat", "-F")
		},
		Dump: func(t *testing.T, node *netns.NS) string {
			out, _ := node.Run(tool + "-save")
			return out
		},
		Leftovers: func(t *testing.T, node *netns.NS) string {
			var left []string
			// Both backends: cleanup must also remove what the other one holds.
			for _, b := range []string{"nft", "legacy"} {
				out := node.MustRun(t, "iptables-"+b+"-save")
				for _, l := range strings.Split(out, "\n") {
					if strings.Contains(l, "KUBE-") {
						left = append(left, b+": "+l)
					}
				}
			}
			return strings.Join(left, "\n")
		},
	}
}

// forEachMode runs f as a subtest per mode.
func forEachMode(t *testing.T, f func(t *testing.T, m mode)) {
	netns.RequireRoot(t)
	for _, m := range modes {
		t.Run(m.Name, func(t *testing.T) { f(t, m) })
	}
}
