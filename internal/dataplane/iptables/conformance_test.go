package iptables

import (
	"context"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
	"kproxy.dev/kproxy/internal/trace"
)

// The cross-mode conformance table on the stateful iptables fake: the rules a sync
// leaves in it, evaluated packet by packet with internal/trace.
func TestConformanceOnFakes(t *testing.T) {
	conformance.RunFake(t, fakeConformanceMode(false))
}

// The masqueradeAll table, on a proxier of its own (the setting is node-wide).
func TestConformanceMasqueradeAllOnFakes(t *testing.T) {
	conformance.RunFakeMasqueradeAll(t, fakeConformanceMode(true))
}

func fakeConformanceMode(masqueradeAll bool) conformance.FakeMode {
	f := fakeipt.New()
	ct := &fakeconntrack.Table{}
	cfg := RenderConfig{MasqueradeBit: 14, MasqueradeAll: masqueradeAll,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix(conformance.ClusterCIDR)}}
	p := withCore(NewProxier(Config{Runner: f, Render: cfg,
		LocalAddresses: func() ([]netip.Addr, error) { return conformance.NodeAddrs(), nil }}), dataplane.CoreOptions{Conntrack: ct})
	return conformance.FakeMode{
		Sync: func(snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error) {
			return p.Sync(context.Background(), snap, cs)
		},
		Trace: func(pkt trace.Packet, o trace.Options) (*trace.Result, error) {
			dump, err := f.Save(context.Background(), "")
			if err != nil {
				return nil, err
			}
			return trace.TraceIptables(string(dump), pkt, o)
		},
		Conntrack: ct,
		Known:     conformance.KnownDifferences["iptables"],
	}
}
