//go:build linux

package nftables

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	tnetns "kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelExternalPolicyLocalWithoutLocalEndpointShortCircuits: eTP Local, the
// only endpoint elsewhere. Pods and the node reaching the NodePort or external IP
// are served by the cluster-wide endpoint, as in kube-proxy; an outside client is
// dropped (times out).
func TestKernelExternalPolicyLocalWithoutLocalEndpointShortCircuits(t *testing.T) {
	requireRoot(t)
	env := tnetns.New(t, "nft-etp")
	remote := env.AddBackend("remote-ep")
	remote.ServeClientAddr(t, 8080)
	pod := env.AddBackend("pod")
	ext := env.AddClient("ext")
	env.Node.MustRun(t, "ip", "route", "add", "192.0.2.0/24", "via", remote.IP.String())
	fd, err := unix.Open("/run/netns/"+env.Node.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	p, err := newCoreProxier(dataplane.Options{Config: &kpconfig.KubeProxyConfiguration{
		ClusterCIDR: "10.244.0.0/16", NodePortAddresses: []string{"all"}}})
	if err != nil {
		t.Fatal(err)
	}
	p.useNetns(fd)
	p.localAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{remote.NodeIP, pod.NodeIP, ext.NodeIP}, nil
	}
	n := state.ServicePortName{Namespace: "ns", Name: "etp", Port: "http", Protocol: v1.ProtocolTCP}
	snap := &state.Snapshot{
		ServiceMap: map[state.ServicePortName]*state.ServicePort{n: {Name: n, Type: v1.ServiceTypeNodePort,
			Protocol: v1.ProtocolTCP, Port: 80, NodePort: 30030, ExternalPolicyLocal: true,
			ClusterIPs:  []netip.Addr{netip.MustParseAddr("10.96.0.30")},
			ExternalIPs: []netip.Addr{netip.MustParseAddr("192.0.2.30")}}},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{n: {{IP: remote.IP, Port: 8080, Ready: true, Serving: true, Weight: 1}}},
	}
	if _, err := p.Sync(context.Background(), snap, state.ChangeSet{}); err != nil {
		t.Fatal(err)
	}
	if got, err := pod.AskTCP("10.96.0.30:80", 2*time.Second); err != nil {
		t.Fatalf("clusterIP: %q %v", got, err)
	}
	conformance.CheckExternalPolicyLocalWithoutLocalEndpoint(t, pod, env.Node, ext, 30030, "192.0.2.30")
}
