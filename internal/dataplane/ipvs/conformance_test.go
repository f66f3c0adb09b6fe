//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/trace"
)

// The cross-mode conformance table on the stateful IPVS fakes: the virtual
// servers, ipsets and iptables rules a sync leaves, evaluated packet by packet
// with internal/trace.
func TestConformanceOnFakes(t *testing.T) {
	f := newFixture(t, proxierOptions{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix(conformance.ClusterCIDR)}})
	f.p.k.LocalAddrs = func() ([]netip.Addr, error) { return conformance.NodeAddrs(), nil }
	f.snap = conformance.Snapshot()
	all := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	for n := range f.snap.Services {
		all.Ports[n] = struct{}{}
	}
	f.sync(all)
	ctx := context.Background()
	conformance.RunFake(t, func(pkt trace.Packet, o trace.Options) (*trace.Result, error) {
		vss, err := f.p.List(ctx)
		if err != nil {
			return nil, err
		}
		sets, err := f.ipset.Save(ctx)
		if err != nil {
			return nil, err
		}
		if o.IPSets, err = trace.ParseIpset(sets); err != nil {
			return nil, err
		}
		rules, err := f.ipt.Save(ctx, false)
		if err != nil {
			return nil, err
		}
		return trace.TraceIPVS(vss, rules, pkt, o)
	}, ipvsDifferences...)
}

// ipvsDifferences are where ipvs mode does not yet behave as kube-proxy's
// iptables and nftables modes (docs/compatibility.md): a Local policy without a
// local endpoint leaves the virtual server without real servers, which rejects
// instead of dropping, and in-cluster clients of an eTP=Local NodePort are not
// short-circuited to the cluster-wide endpoints.
var ipvsDifferences = []conformance.Difference{
	{Scenario: "externalTrafficPolicy Local without a local endpoint", From: conformance.FromExternal, Addr: "NODE:30106"},
	{Scenario: "externalTrafficPolicy Local without a local endpoint", From: conformance.FromPod, Addr: "NODE:30106"},
	{Scenario: "externalTrafficPolicy Local without a local endpoint", From: conformance.FromNode, Addr: "NODE:30106"},
	{Scenario: "internalTrafficPolicy Local", From: conformance.FromPod, Addr: "10.96.1.8:80"},
}
