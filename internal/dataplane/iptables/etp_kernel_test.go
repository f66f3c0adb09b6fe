//go:build linux

package iptables

import (
	"context"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
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
	conformance.CheckExternalPolicyLocalWithoutLocalEndpoint(t, pod, env.Node, ext, 30030, "192.0.2.30")
}
