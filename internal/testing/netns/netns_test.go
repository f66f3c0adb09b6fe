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
