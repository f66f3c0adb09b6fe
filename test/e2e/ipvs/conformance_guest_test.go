//go:build linux

package ipvs

import (
	"net"
	"net/netip"
	"testing"
	"time"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// The cross-mode conformance table on IPVS in the VM, with real traffic from a
// pod behind the node, the node itself (the VM's root namespace) and an external
// host, each endpoint answering with the client address it saw (the table's
// Seen). ipvs's known differences (conformance.KnownDifferences) must still differ.
// Then the masqueradeAll table on a dataplane of its own, in the same topology.
func TestGuestConformance(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("cf-be", conformance.Backends, true)
	client := tp.add("cf-cl", "192.168")
	pod := tp.add("cf-pod", "10.244")
	addrs := conformance.Addrs{
		Backend:  func(i int) netip.Addr { return backends[i].IP },
		External: client.IP,
	}
	// The node's own probes all want the node's address towards the endpoint
	// (SeenNode), so its ClientIP is never what an endpoint must see.
	node := conformance.Node{
		Mode: "ipvs",
		ClientIP: func(w conformance.Where) string {
			switch w {
			case conformance.FromPod:
				return pod.IP.String()
			case conformance.FromNode:
				return client.NodeIP.String()
			}
			return client.IP.String()
		},
		NodeIPToward: func(i int) string { return backends[i].NodeIP.String() },
		From: func(w conformance.Where) conformance.Asker {
			switch w {
			case conformance.FromPod:
				return pod
			case conformance.FromNode:
				return vmRoot{}
			}
			return client
		},
		NodeIP: func(w conformance.Where) string {
			if w == conformance.FromPod {
				return pod.NodeIP.String()
			}
			return client.NodeIP.String()
		},
		Backend: func(i int) string { return backends[i].Name },
	}
	cfg := &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}
	dp := newDataplaneConfig(t, cfg)
	syncAll(t, dp, conformance.SnapshotOf(conformance.Scenarios(), addrs))
	conformance.RunKernel(t, node, conformance.KnownDifferences["ipvs"])
	if err := dp.Cleanup(bg); err != nil {
		t.Fatalf("cleanup before the masqueradeAll run: %v", err)
	}
	t.Run("masqueradeAll", func(t *testing.T) {
		cfg := &kpconfig.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16"}
		cfg.IPTables.MasqueradeAll = true // the ipvs mode reads the iptables section's
		dp := newDataplaneConfig(t, cfg)
		scs := conformance.MasqueradeAllScenarios()
		syncAll(t, dp, conformance.SnapshotOf(scs, addrs))
		conformance.RunKernelOf(t, node, scs, conformance.KnownDifferences["ipvs"])
	})
}

func syncAll(t *testing.T, dp dataplane.Dataplane, snap *state.Snapshot) {
	t.Helper()
	all := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for n := range snap.All() {
		all.Ports[n] = struct{}{}
	}
	if _, err := dp.Sync(bg, snap, all); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// vmRoot connects from the VM's root namespace, the node.
type vmRoot struct{}

func (vmRoot) AskTCP(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return netns.ReadLine(c, timeout)
}

func (vmRoot) AskUDP(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("udp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return netns.AskConn(c, timeout)
}

func (vmRoot) AskTCPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return netns.AskTCPSourceConn(c, timeout)
}

func (vmRoot) AskUDPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return netns.AskSource(c, timeout)
}
