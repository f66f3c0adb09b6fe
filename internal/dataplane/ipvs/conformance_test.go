//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/trace"
)

// The cross-mode conformance table on the stateful IPVS fakes: the virtual
// servers, ipsets and iptables rules a sync leaves, evaluated packet by packet
// with internal/trace.
func TestConformanceOnFakes(t *testing.T) {
	conformance.RunFake(t, fakeConformanceMode(t, false))
}

// The masqueradeAll table, on a proxier of its own (the setting is node-wide).
func TestConformanceMasqueradeAllOnFakes(t *testing.T) {
	conformance.RunFakeMasqueradeAll(t, fakeConformanceMode(t, true))
}

func fakeConformanceMode(t *testing.T, masqueradeAll bool) conformance.FakeMode {
	f := newFixture(t, proxierOptions{MasqueradeAll: masqueradeAll,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix(conformance.ClusterCIDR)}})
	f.p.k.LocalAddrs = func() ([]netip.Addr, error) { return conformance.NodeAddrs(), nil }
	ctx := context.Background()
	return conformance.FakeMode{
		Sync: func(snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error) {
			f.snap = snap
			return f.core.Sync(ctx, snap, cs)
		},
		Trace: func(pkt trace.Packet, o trace.Options) (*trace.Result, error) {
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
		},
		Conntrack: f.ct,
		Known:     conformance.KnownDifferences["ipvs"],
	}
}
