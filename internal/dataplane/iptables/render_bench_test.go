package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchmem"
)

// benchSnapshot is n ClusterIP Services with e endpoints each, the kernel-baseline
// workload.
func benchSnapshot(n, e int) *state.Snapshot {
	var svcs []*svc
	k := 0
	for i := 0; i < n; i++ {
		ip := netip.AddrFrom4([4]byte{10, 96, byte((i + 1) >> 8), byte(i + 1)})
		s := newSvc("bench", fmt.Sprintf("svc-%06d", i), "http", tcp, ip.String(), 80)
		for j := 0; j < e; j++ {
			k++
			s.ep(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(k >> 8), byte(k)}), 8080).String(), true, false)
		}
		svcs = append(svcs, s)
	}
	return snapshot(svcs...)
}

func benchmarkRender(b *testing.B, n int) {
	snap := benchSnapshot(n, 3)
	cfg := testRenderConfig()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Render(snap, cfg)
	}
}

func BenchmarkRender1000(b *testing.B)  { benchmarkRender(b, 1000) }
func BenchmarkRender10000(b *testing.B) { benchmarkRender(b, 10000) }

// BenchmarkRenderFullText includes producing the restore input for empty tables.
func BenchmarkRenderFullText10000(b *testing.B) {
	snap := benchSnapshot(10000, 3)
	cfg := testRenderConfig()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		FullText(Render(snap, cfg))
	}
}

// BenchmarkColdSync10000 is kproxy's own share of a cold full sync (render, diff
// against empty tables, restore input), with a fake runner instead of iptables.
func BenchmarkColdSync10000(b *testing.B) {
	snap := benchSnapshot(10000, 3)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := newTestProxier(discardRunner{})
		if _, err := p.Sync(context.Background(), snap, changes()); err != nil {
			b.Fatal(err)
		}
	}
}

// discardRunner accepts every restore and applies nothing: the benchmark measures
// kproxy's work, not the fake kernel's.
type discardRunner struct{}

func (discardRunner) Restore(context.Context, []byte, bool) error  { return nil }
func (discardRunner) Save(context.Context, string) ([]byte, error) { return nil, nil }
func (discardRunner) ListChain(context.Context, string, string) ([]string, bool, error) {
	return nil, true, nil
}

// BenchmarkPartialSyncsRetained is the heap that one-Service partial syncs leave
// alive between two full syncs: each changes another Service of 1,000, so the
// rules of every one stay applied. KiB/sync is the live heap's growth per sync.
//
//	go test ./internal/dataplane/iptables -run '^$' -bench PartialSyncsRetained -benchtime 1x
func BenchmarkPartialSyncsRetained(b *testing.B) {
	const n, syncs = 1000, 500
	snap := benchSnapshot(n, 3)
	var names []state.ServicePortName
	for name := range snap.ServiceMap {
		names = append(names, name)
	}
	var grown float64
	for b.Loop() {
		p := newTestProxier(discardRunner{})
		if _, err := p.Sync(context.Background(), snap, changes()); err != nil {
			b.Fatal(err)
		}
		base := benchmem.LiveHeap()
		for i := range syncs {
			if _, err := p.Sync(context.Background(), snap, changes(names[i])); err != nil {
				b.Fatal(err)
			}
		}
		grown = float64(benchmem.LiveHeap()-base) / syncs / 1024
		runtime.KeepAlive(p)
	}
	b.ReportMetric(grown, "KiB/sync")
}
