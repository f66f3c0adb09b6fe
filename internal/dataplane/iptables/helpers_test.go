package iptables

import (
	"context"
	"net/netip"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// svc is a test ServicePort builder.
type svc struct {
	sp  *state.ServicePort
	eps []state.Endpoint
}

func newSvc(ns, name, port string, proto v1.Protocol, clusterIP string, p int32) *svc {
	n := state.ServicePortName{Namespace: ns, Name: name, Port: port, Protocol: proto}
	return &svc{sp: &state.ServicePort{Name: n, Type: v1.ServiceTypeClusterIP, Protocol: proto,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(clusterIP)}, Port: p}}
}

func (s *svc) ep(addr string, ready bool, local bool) *svc {
	ap := netip.MustParseAddrPort(addr)
	s.eps = append(s.eps, state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: ready, Serving: ready, IsLocal: local})
	return s
}

func (s *svc) terminating(addr string, local bool) *svc {
	ap := netip.MustParseAddrPort(addr)
	s.eps = append(s.eps, state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Serving: true, Terminating: true, IsLocal: local})
	return s
}

func (s *svc) with(f func(sp *state.ServicePort)) *svc { f(s.sp); return s }

func snapshot(svcs ...*svc) *state.Snapshot {
	snap := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: state.NodeInfo{Name: "node-a"}}
	for _, s := range svcs {
		snap.ServiceMap[s.sp.Name] = s.sp
		snap.EndpointMap[s.sp.Name] = s.eps
	}
	return snap
}

func changes(names ...state.ServicePortName) state.ChangeSet {
	c := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for _, n := range names {
		c.Ports[n] = struct{}{}
	}
	return c
}

func testRenderConfig() RenderConfig {
	return RenderConfig{MasqueradeBit: 14, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}
}

// coreProxier drives a Proxier through the proxier core, as the daemon does.
type coreProxier struct {
	*Proxier
	core *dataplane.Core
}

func (c coreProxier) Sync(ctx context.Context, snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error) {
	return c.core.Sync(ctx, snap, cs)
}

func (c coreProxier) Cleanup(ctx context.Context) error { return c.core.Cleanup(ctx) }

func withCore(p *Proxier, o dataplane.CoreOptions) coreProxier {
	if o.Now == nil {
		now := time.Unix(1000, 0)
		o.Now = func() time.Time { return now }
	}
	return coreProxier{Proxier: p, core: dataplane.NewCore(p, o)}
}

func newTestProxier(r Runner) coreProxier {
	return withCore(NewProxier(Config{Runner: r, Render: testRenderConfig()}), dataplane.CoreOptions{})
}

// linesOf returns the lines of a restore input that mention s.
func linesOf(input, s string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}
