//go:build linux

package nftables

import (
	"context"
	"maps"
	"runtime"
	"testing"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchmem"
)

// BenchmarkKernelFullSyncMemory is the memory of one cold full sync of 10,000
// Services x 3 endpoints into the kernel (a private namespace, root only), issue 16:
// B/op is everything the sync allocates, live-MiB what the Proxier keeps after it
// (the model for the next partial sync), both without the snapshot itself.
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelFullSyncMemory -benchmem -benchtime 3x -memprofile /tmp/mem.out
func BenchmarkKernelFullSyncMemory(b *testing.B) {
	requireRoot(b)
	snap := bigSnapshot(10000, 3)
	ns := newNetns(b, "mem")
	ctx := context.Background()
	var live uint64
	for b.Loop() {
		base := benchmem.LiveHeap()
		p, err := newCoreProxier(testDPOptions())
		if err != nil {
			b.Fatal(err)
		}
		p.useNetns(ns.fd)
		if st, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil || !st.Full {
			b.Fatalf("full sync: %v (full=%v)", err, st.Full)
		}
		b.StopTimer()
		live = benchmem.LiveHeap() - base
		runtime.KeepAlive(p)
		// Its watch would otherwise read the next iteration's announcements.
		if err := p.Cleanup(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(live)/(1<<20), "live-MiB")
}

// BenchmarkKernelPartialSyncsRetained is the heap that one-Service partial syncs
// leave alive between two full syncs (a private namespace, root only): each
// changes another Service of 1,000. KiB/sync is the live heap's growth per sync.
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelPartialSyncsRetained -benchtime 1x
func BenchmarkKernelPartialSyncsRetained(b *testing.B) {
	requireRoot(b)
	const syncs = 300
	snap := bigSnapshot(1000, 3)
	var names []state.ServicePortName
	for n := range snap.ServiceMap {
		names = append(names, n)
	}
	ns := newNetns(b, "memp")
	ctx := context.Background()
	var grown float64
	for b.Loop() {
		p, err := newCoreProxier(testDPOptions())
		if err != nil {
			b.Fatal(err)
		}
		p.useNetns(ns.fd)
		if _, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil {
			b.Fatal(err)
		}
		base := benchmem.LiveHeap()
		for i := range syncs {
			// Another version of the snapshot, so the Service really changes.
			next := *snap
			next.EndpointMap = maps.Clone(snap.EndpointMap)
			next.EndpointMap[names[i]] = snap.EndpointMap[names[i]][:2]
			st, err := p.Sync(ctx, &next, state.ChangeSet{Ports: map[state.ServicePortName]struct{}{names[i]: {}}})
			if err != nil || st.Full {
				b.Fatalf("partial sync: %v (full=%v)", err, st.Full)
			}
			snap = &next
		}
		grown = float64(int64(benchmem.LiveHeap())-int64(base)) / syncs / 1024
		runtime.KeepAlive(p)
	}
	b.ReportMetric(grown, "KiB/sync")
}
