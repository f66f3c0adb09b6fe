//go:build linux

package nftables

import (
	"context"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/conformance"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
	"kproxy.dev/kproxy/internal/testing/fakenft"
	"kproxy.dev/kproxy/internal/trace"
)

// The cross-mode conformance table on the stateful nftables fake: what a sync
// leaves in it, read as netlink would and evaluated packet by packet with
// internal/trace.
func TestConformanceOnFakes(t *testing.T) {
	conformance.RunFake(t, fakeConformanceMode(t, testDPOptions()))
}

// The masqueradeAll table, on a proxier of its own (the setting is node-wide).
func TestConformanceMasqueradeAllOnFakes(t *testing.T) {
	o := testDPOptions()
	o.Config.NFTables.MasqueradeAll = true
	conformance.RunFakeMasqueradeAll(t, fakeConformanceMode(t, o))
}

func fakeConformanceMode(t *testing.T, o dataplane.Options) conformance.FakeMode {
	k := fakenft.New()
	p, err := newCoreProxier(o)
	if err != nil {
		t.Fatal(err)
	}
	p.useConns(func() (nfConn, error) { return k.Conn(), nil })
	p.localAddrs = func() ([]netip.Addr, error) { return conformance.NodeAddrs(), nil }
	ct := &fakeconntrack.Table{}
	p.core = dataplane.NewCore(p.Proxier, dataplane.CoreOptions{Conntrack: ct})
	return conformance.FakeMode{
		Sync: func(snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error) {
			return p.Sync(context.Background(), snap, cs)
		},
		Trace: func(pkt trace.Packet, o trace.Options) (*trace.Result, error) {
			var tables []trace.NetlinkTable
			for _, ft := range k.Tables() {
				tables = append(tables, trace.NetlinkTable(ft))
			}
			return trace.TraceNftRuleset(trace.DecodeNetlink(tables), pkt, o), nil
		},
		Conntrack: ct,
		Known:     conformance.KnownDifferences["nftables"],
	}
}
