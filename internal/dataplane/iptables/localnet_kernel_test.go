//go:build linux

package iptables

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/sysctl"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// routeLoopbackVia makes ns send packets for 127.0.0.1 to the node, as a hostile host
// on the node's link can (CVE-2020-8558).
func routeLoopbackVia(t *testing.T, ns *netns.NS) {
	ns.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")
	ns.MustRun(t, "ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
	ns.MustRun(t, "ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local")
	ns.MustRun(t, "ip", "route", "add", "127.0.0.1/32", "via", ns.NodeIP.String(), "dev", "eth0")
	// Counts the node's SYN-ACKs from 127.0.0.1: the attacker's own kernel drops
	// them, so the handshake cannot complete here, but a SYN-ACK proves the node's
	// loopback listener answered.
	for _, port := range []string{"18080", "18082"} {
		ns.MustRun(t, "iptables-nft", "-t", "raw", "-A", "PREROUTING", "-s", "127.0.0.1", "-p", "tcp",
			"--sport", port, "--tcp-flags", "SYN,ACK", "SYN,ACK")
	}
}

// synAcksSeen counts the SYN-ACKs ns received from the node's 127.0.0.1:port (one
// port per connection attempt: the node retransmits SYN-ACKs of half-open ones).
func synAcksSeen(t *testing.T, ns *netns.NS, port string) int {
	out := ns.MustRun(t, "iptables-nft", "-t", "raw", "-vxnL", "PREROUTING")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.Contains(l, "spt:"+port) {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	t.Fatalf("no counter rule in:\n%s", out)
	return 0
}

// loopbackUDPReached sends a datagram from ns to 127.0.0.1:port and reports whether
// the node's loopback listener received it.
func loopbackUDPReached(t *testing.T, ns *netns.NS, got <-chan string) bool {
	c, err := ns.Dial("udp4", "127.0.0.1:18081", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("probe\n"))
	select {
	case <-got:
		return true
	case <-time.After(700 * time.Millisecond):
		return false
	}
}

// TestKernelLocalnetBlockedFromOutside: with localhost NodePorts on (the default),
// route_localnet is set, and a host that routes 127.0.0.1 to the node must not reach
// anything bound to the node's 127.0.0.1, while 127.0.0.1:NodePort keeps working on
// the node itself.
func TestKernelLocalnetBlockedFromOutside(t *testing.T) {
	netns.RequireRoot(t)
	env, r := kernelNS(t, BackendNFT)
	pod := env.AddBackend("pod")
	pod.ServeTCP(t, 8080)
	ext := env.AddClient("ext")
	routeLoopbackVia(t, ext)

	for _, a := range []string{"127.0.0.1:18080", "127.0.0.1:18082"} {
		l, err := env.Node.Listen("tcp4", a)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
	}
	udpL, err := env.Node.ListenPacket("udp4", "127.0.0.1:18081")
	if err != nil {
		t.Fatal(err)
	}
	defer udpL.Close()
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := udpL.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- from.String()
		}
	}()

	cfg := Config{Runner: r, Render: testRenderConfig()}
	if err := env.Node.Do(func() error { return enableLocalnet(sysctl.New(), &cfg, slog.New(slog.DiscardHandler)) }); err != nil {
		t.Fatal(err)
	}
	if v := strings.TrimSpace(env.Node.MustRun(t, "sysctl", "-n", "net.ipv4.conf.all.route_localnet")); v != "1" || !cfg.Render.BlockLocalnet {
		t.Fatalf("route_localnet=%s BlockLocalnet=%v after enableLocalnet with defaults", v, cfg.Render.BlockLocalnet)
	}

	// Without kproxy's rules the topology does expose the node's loopback: this is
	// what makes the assertions below meaningful.
	ext.Dial("tcp4", "127.0.0.1:18082", 500*time.Millisecond)
	if !loopbackUDPReached(t, ext, got) || synAcksSeen(t, ext, "18082") == 0 {
		t.Fatal("test topology broken: the node's loopback is not reachable even without the blocking rule")
	}

	np := newSvc("ns", "np", "http", tcp, "10.96.0.40", 80).ep(pod.IP.String()+":8080", true, false).
		with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30040 })
	p := withCore(NewProxier(cfg), dataplane.CoreOptions{})
	if _, err := p.Sync(context.Background(), snapshot(np), changes()); err != nil {
		t.Fatal(err)
	}
	if c, err := ext.Dial("tcp4", "127.0.0.1:18080", 700*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("external host connected to the node's 127.0.0.1")
	}
	if n := synAcksSeen(t, ext, "18080"); n != 0 {
		t.Fatalf("the node answered %d SYNs to 127.0.0.1 from an external host", n)
	}
	if loopbackUDPReached(t, ext, got) {
		t.Fatal("a datagram from an external host reached the node's 127.0.0.1")
	}
	if name, err := env.Node.AskTCP(net.JoinHostPort("127.0.0.1", "30040"), 2*time.Second); err != nil || name != pod.Name {
		t.Fatalf("localhost NodePort from the node: %q, %v; want %q", name, err, pod.Name)
	}
}
