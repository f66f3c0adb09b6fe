//go:build linux

package ipvs

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// The cross-mode conformance table on IPVS in the VM, with real traffic from a
// pod behind the node, the node itself (the VM's root namespace) and an external
// host, each endpoint answering with the client address it saw (the table's
// Seen). ipvs's known differences (conformance.KnownDifferences) must still differ.
func TestGuestConformance(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	backends := tp.backends("cf-be", conformance.Backends, true)
	client := tp.add("cf-cl", "192.168")
	pod := tp.add("cf-pod", "10.244")
	dp := newDataplane(t, "")
	snap := conformance.SnapshotFor(conformance.Addrs{
		Backend:  func(i int) netip.Addr { return backends[i].IP },
		External: client.IP,
	})
	all := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for n := range snap.Services {
		all.Ports[n] = struct{}{}
	}
	if _, err := dp.Sync(bg, snap, all); err != nil {
		t.Fatalf("sync: %v", err)
	}
	// The node's own probes all want the node's address towards the endpoint
	// (SeenNode), so its ClientIP is never what an endpoint must see.
	conformance.RunKernel(t, conformance.Node{
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
	}, conformance.KnownDifferences["ipvs"])
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
