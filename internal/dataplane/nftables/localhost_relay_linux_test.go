//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	tnetns "kproxy.dev/kproxy/internal/testing/netns"
)

func TestLocalhostRelayOnlyWithGateAndExplicitLoopback(t *testing.T) {
	on := map[string]bool{FeatureLocalhostNodePorts: true}
	for _, c := range []struct {
		gates map[string]bool
		list  []string
		want  string
	}{
		{nil, []string{"localhost"}, "<nil>"},
		{on, nil, "<nil>"},
		{on, []string{"all"}, "<nil>"},
		{on, []string{"primary", "localhost"}, "[127.0.0.1 ::1]"},
		{on, []string{"127.0.0.0/8"}, "[127.0.0.1]"},
	} {
		r, err := NewLocalhostRelay(&kpconfig.KubeProxyConfiguration{FeatureGates: c.gates, NodePortAddresses: c.list}, nil, nil)
		got := "<nil>"
		if r != nil {
			got = fmt.Sprint(r.Addrs)
		}
		if err != nil || got != c.want {
			t.Errorf("gates %v list %q: relay %s (%v), want %s", c.gates, c.list, got, err, c.want)
		}
	}
}

// TestKernelLocalhostRelay: 127.0.0.1:NodePort on the node reaches an endpoint
// through the relay; eTP Local without a local endpoint and UDP get no listener;
// a removed Service's listener closes.
func TestKernelLocalhostRelay(t *testing.T) {
	requireRoot(t)
	env := tnetns.New(t, "nft-relay")
	be := env.AddBackend("be")
	be.ServeTCP(t, 8080)
	reg := prometheus.NewRegistry()
	r, err := NewLocalhostRelay(&kpconfig.KubeProxyConfiguration{
		FeatureGates: map[string]bool{FeatureLocalhostNodePorts: true}, NodePortAddresses: []string{"127.0.0.0/8"}}, reg, nil)
	if err != nil || r == nil {
		t.Fatalf("relay: %v %v", r, err)
	}
	r.Listen, r.Dial = env.Node.Listen, env.Node.Dial
	defer r.Close(context.Background())
	ep := state.Endpoint{IP: be.IP, Port: 8080, Ready: true, Serving: true, Weight: 1}
	svc := func(name string, proto v1.Protocol, nodePort int32, etpLocal bool) (state.ServicePortName, *state.ServicePort) {
		n := state.ServicePortName{Namespace: "ns", Name: name, Protocol: proto}
		return n, &state.ServicePort{Name: n, Type: v1.ServiceTypeNodePort, Protocol: proto, Port: 80,
			NodePort: nodePort, ExternalPolicyLocal: etpLocal, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")}}
	}
	snap := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}}
	for _, s := range []struct {
		name     string
		proto    v1.Protocol
		port     int32
		etpLocal bool
	}{{"web", v1.ProtocolTCP, 30080, false}, {"local", v1.ProtocolTCP, 30081, true}, {"dns", v1.ProtocolUDP, 30082, false}} {
		n, sp := svc(s.name, s.proto, s.port, s.etpLocal)
		snap.ServiceMap[n], snap.EndpointMap[n] = sp, []state.Endpoint{ep}
	}
	if err := r.Update(dataplane.NewRequest(snap)); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Node.AskTCP("127.0.0.1:30080", 2*time.Second); err != nil || got != be.Name {
		t.Fatalf("127.0.0.1:30080: %q %v; want %s", got, err, be.Name)
	}
	for _, port := range []string{"30081", "30082"} {
		if _, err := env.Node.AskTCP("127.0.0.1:"+port, time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("127.0.0.1:%s: %v, want refused (no listener)", port, err)
		}
	}
	if v := testutil.ToFloat64(r.listenersGauge.WithLabelValues("IPv4")); v != 1 {
		t.Errorf("listeners{IPv4} = %v, want 1", v)
	}
	web, _ := svc("web", v1.ProtocolTCP, 30080, false)
	delete(snap.ServiceMap, web)
	if err := r.Update(dataplane.NewRequest(snap)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Node.AskTCP("127.0.0.1:30080", time.Second); err == nil {
		t.Fatal("listener of a removed Service still answers")
	}
}
