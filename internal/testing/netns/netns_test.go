//go:build linux

package netns

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestBackendReachableFromNodeAndClient(t *testing.T) {
	env := New(t, "iptables-h")
	be := env.AddBackend("web")
	be.ServeTCP(t, 8080)
	be.ServeUDP(t, 5353)
	cl := env.AddClient("cl")

	got, err := env.Node.AskTCP(be.IP.String()+":8080", time.Second)
	if err != nil || got != be.Name {
		t.Fatalf("node -> backend tcp: got %q, %v; want %q", got, err, be.Name)
	}
	// The client routes through the node: proves forwarding and the veth setup.
	// A lone datagram may be lost while the fresh veths come up (under load in CI),
	// so it is retried; a broken path still fails after 5s.
	err = Eventually(context.Background(), 5*time.Second, func() error {
		var err error
		got, err = cl.AskUDP(be.IP.String()+":5353", time.Second)
		return err
	})
	if err != nil || got != be.Name {
		t.Fatalf("client -> backend udp: got %q, %v; want %q", got, err, be.Name)
	}
	out := env.Node.MustRun(t, "ip", "-o", "addr")
	if !strings.Contains(out, cl.NodeIP.String()) {
		t.Fatalf("node lacks address %s: %s", cl.NodeIP, out)
	}
}

func TestNamespacesRemovedOnCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		env := New(t, "iptables-h")
		name = env.AddBackend("x").Name
	})
	out, err := (&NS{}).runHost("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, name) {
		t.Fatalf("namespace %s still exists after cleanup", name)
	}
}

func (*NS) runHost(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// The backends report the client address they see: the client's own address
// when routed through the node unchanged, over TCP, UDP and IPv6.
func TestServersReportTheClientAddress(t *testing.T) {
	env := New(t, "conform-h")
	be := env.AddBackend("web")
	be.ServeTCP(t, 8080)
	be.ServeUDP(t, 5353)
	cl := env.AddClient("cl")
	env.Node.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	be6 := env.AddIPv6(t, be, "244", 1)
	cl6 := env.AddIPv6(t, cl, "168", 2)
	be.ServeTCP6Reply(t, 8081, "web6")
	for _, c := range []struct {
		ask            func() (string, string, error)
		name, wantFrom string
	}{
		{func() (string, string, error) { return cl.AskTCPSource("tcp4", be.IP.String()+":8080", time.Second) }, be.Name, cl.IP.String()},
		{func() (string, string, error) { return cl.AskUDPSource("udp4", be.IP.String()+":5353", time.Second) }, be.Name, cl.IP.String()},
		{func() (string, string, error) {
			return env.Node.AskTCPSource("tcp4", be.IP.String()+":8080", time.Second)
		}, be.Name, be.NodeIP.String()},
		{func() (string, string, error) {
			return cl.AskTCPSource("tcp6", "["+be6.String()+"]:8081", time.Second)
		}, "web6", cl6.String()},
	} {
		var name, src string
		err := Eventually(context.Background(), 5*time.Second, func() (err error) {
			name, src, err = c.ask()
			return err
		})
		if err != nil || name != c.name || src != c.wantFrom {
			t.Errorf("got %q from %q (%v), want %q from %q", name, src, err, c.name, c.wantFrom)
		}
	}
	// The plain question still gets the plain answer.
	if got, err := cl.AskTCP(be.IP.String()+":8080", time.Second); err != nil || got != be.Name {
		t.Errorf("AskTCP: %q %v, want %q", got, err, be.Name)
	}
}
