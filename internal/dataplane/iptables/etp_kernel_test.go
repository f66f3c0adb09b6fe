//go:build linux

package iptables

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelExternalPolicyLocalWithoutLocalEndpointShortCircuits: eTP Local, the
// only endpoint on another node. Pods and the node itself reaching the NodePort or
// an external IP are served by the cluster-wide endpoint, as in kube-proxy; an
// outside client is dropped (it times out: no reset, so its load balancer moves on).
func TestKernelExternalPolicyLocalWithoutLocalEndpointShortCircuits(t *testing.T) {
	netns.RequireRoot(t)
	env, r := kernelNS(t, BackendNFT)
	remote := env.AddBackend("remote-ep") // stands for an endpoint on another node
	remote.ServeClientAddr(t, 8080)
	pod := env.AddBackend("pod")
	ext := env.AddClient("ext")
	// A real node routes everywhere; without a route, outside traffic to the
	// external IP would get "network unreachable" before the filter table sees it.
	env.Node.MustRun(t, "ip", "route", "add", "192.0.2.0/24", "via", remote.IP.String())
	s := newSvc("ns", "etp", "http", tcp, "10.96.0.30", 80).ep(remote.IP.String()+":8080", true, false).
		with(func(sp *state.ServicePort) {
			sp.Type = v1.ServiceTypeNodePort
			sp.NodePort = 30030
			sp.ExternalPolicyLocal = true
			sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("192.0.2.30")}
		})
	p := withCore(NewProxier(Config{Runner: r, Render: testRenderConfig()}), dataplane.CoreOptions{})
	if _, err := p.Sync(context.Background(), snapshot(s), changes()); err != nil {
		t.Fatal(err)
	}
	nodePort := pod.NodeIP.String() + ":30030"
	for _, c := range []struct {
		name string
		from *netns.NS
		addr string
		want string // the client address the endpoint sees; "" any
	}{
		{"pod to NodePort", pod, nodePort, pod.IP.String()},
		{"pod to external IP", pod, "192.0.2.30:80", pod.IP.String()},
		// The node's addresses here lie inside the cluster CIDR, so the endpoint may
		// see either the node's own source or its masqueraded one.
		{"node to NodePort", env.Node, nodePort, ""},
		{"node to external IP", env.Node, "192.0.2.30:80", ""},
	} {
		got, err := c.from.AskTCP(c.addr, 2*time.Second)
		if err != nil || (c.want != "" && got != c.want) {
			t.Errorf("%s: endpoint saw %q (%v), want %s", c.name, got, err, c.want)
		}
	}
	for _, addr := range []string{ext.NodeIP.String() + ":30030", "192.0.2.30:80"} {
		got, err := ext.AskTCP(addr, 700*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("outside client to %s: %q, %v; want dropped (timeout)", addr, got, err)
		}
	}
}
