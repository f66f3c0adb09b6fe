//go:build linux

package nftables

import (
	"context"
	"runtime"
	"testing"

	"kproxy.dev/kproxy/internal/state"
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
		base := liveHeap()
		p, err := newCoreProxier(testDPOptions())
		if err != nil {
			b.Fatal(err)
		}
		p.useNetns(ns.fd)
		if st, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil || !st.Full {
			b.Fatalf("full sync: %v (full=%v)", err, st.Full)
		}
		b.StopTimer()
		live = liveHeap() - base
		runtime.KeepAlive(p)
		b.StartTimer()
	}
	b.ReportMetric(float64(live)/(1<<20), "live-MiB")
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
