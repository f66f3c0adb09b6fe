//go:build linux

package healthcheck

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelHealthPortOnlyOnSelectedAddress: with nodePortAddresses naming the
// client network, an external client gets the health answer on the node's address
// there, and the node's address on the pod network refuses the port.
func TestKernelHealthPortOnlyOnSelectedAddress(t *testing.T) {
	netns.RequireRoot(t)
	env := netns.New(t, "hc-addr")
	client := env.AddClient("lb")
	pod := env.AddBackend("pod")
	s := New(Options{Listen: env.Node.Listen, NodePortAddresses: []string{"192.168.0.0/16"}})
	defer s.Close()
	snap := hcSnapshot()
	snap.Node.Addresses = []netip.Addr{client.NodeIP, pod.NodeIP}
	if err := s.Refresh(nil, snap, nil, true); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial("tcp4", fmt.Sprintf("%s:32000", client.NodeIP), time.Second)
	if err != nil {
		t.Fatalf("health port on the selected address: %v", err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(status, "503") {
		t.Fatalf("status line %q, %v; want 503 (no local endpoints)", status, err)
	}
	if c, err := pod.Dial("tcp4", fmt.Sprintf("%s:32000", pod.NodeIP), time.Second); err == nil {
		c.Close()
		t.Fatal("health port answered on the pod-network address outside nodePortAddresses")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want connection refused, got %v", err)
	}
}
