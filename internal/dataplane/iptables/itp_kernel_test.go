//go:build linux

package iptables

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelInternalPolicyLocalMasqueradesOffClusterClients: with
// internalTrafficPolicy Local, a client outside the cluster network that routes the
// Service range to the node reaches the local endpoint masqueraded (the endpoint
// sees the node), as in kube-proxy; pods keep their own address.
func TestKernelInternalPolicyLocalMasqueradesOffClusterClients(t *testing.T) {
	netns.RequireRoot(t)
	env, r := kernelNS(t, BackendNFT)
	pod := env.AddBackend("pod")
	pod.ServeClientAddr(t, 8080)
	other := env.AddBackend("other-pod")
	ext := env.AddClient("ext")
	s := newSvc("ns", "itp", "http", tcp, "10.96.0.16", 80).ep(pod.IP.String()+":8080", true, true).
		with(func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })
	p := withCore(NewProxier(Config{Runner: r, Render: testRenderConfig()}), dataplane.CoreOptions{})
	if _, err := p.Sync(context.Background(), snapshot(s), changes()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from *netns.NS
		want netip.Addr
	}{
		{ext, pod.NodeIP}, // off-cluster: masqueraded to the node's address
		{other, other.IP}, // a pod: its own address
	} {
		got, err := c.from.AskTCP("10.96.0.16:80", 2*time.Second)
		if err != nil || got != c.want.String() {
			t.Errorf("from %s: endpoint saw %q (%v), want %s", c.from.Name, got, err, c.want)
		}
	}
}
