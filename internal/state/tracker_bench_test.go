package state

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"kproxy.dev/kproxy/internal/testing/benchmem"
)

// benchTracker returns a Tracker holding n Services with one slice of two endpoints
// each, already folded into a snapshot.
func benchTracker(b *testing.B, n int) *Tracker {
	b.Helper()
	tr := NewTracker(Options{NodeName: "node-a"})
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String()
		tr.UpsertService(testService("bench", name, ip))
		tr.UpsertEndpointSlice(testSlice("bench", name+"-1", name, map[string]int32{"http": 8080},
			ready(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String()),
			ready(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}).String())))
	}
	tr.Snapshot()
	return tr
}

// BenchmarkTrackerSnapshot measures one sync's model work: `changes` EndpointSlice
// updates folded into a Snapshot of `services` Services. The cost must grow with
// changes (times log services: the index copies each changed port's path), never
// with services x changes, and no longer with services alone (the map copies
// before issue 16).
func BenchmarkTrackerSnapshot(b *testing.B) {
	for _, services := range []int{1000, 10000, 50000, 100000} {
		for _, changes := range []int{1, 100} {
			b.Run(fmt.Sprintf("services=%d/changes=%d", services, changes), func(b *testing.B) {
				tr := benchTracker(b, services)
				// Two versions of each changed slice, alternated, built before timing.
				var versions [2][]*discovery.EndpointSlice
				for v := range versions {
					for c := 0; c < changes; c++ {
						name := fmt.Sprintf("svc-%d", (c*97)%services)
						ip := netip.AddrFrom4([4]byte{10, 3, byte(v), byte(c)}).String()
						versions[v] = append(versions[v], testSlice("bench", name+"-1", name, map[string]int32{"http": 8080}, ready(ip)))
					}
				}
				round := 0
				b.ReportAllocs()
				for b.Loop() {
					round++
					for _, es := range versions[round%2] {
						tr.UpsertEndpointSlice(es)
					}
					snap, cs := tr.Snapshot()
					if snap.Len() != services || len(cs.Ports) != changes {
						b.Fatalf("services %d changed %d", snap.Len(), len(cs.Ports))
					}
				}
			})
		}
	}
}

// BenchmarkTrackerColdMemory is the Tracker's share of a cold start at 10,000
// Services x 3 endpoints (issue 16): the objects are built first (the informer
// caches hold them in the daemon); B/op is what upserting them and the first
// Snapshot allocate, live-MiB what the Tracker keeps beyond the objects. The
// EndpointSlice objects stay alive here, but the Tracker keeps none of them:
// it converts each (state.Slice), and the daemon's informer caches that Slice
// instead of the object, so live-MiB now includes what replaced them
// (BenchmarkInformerHeap in internal/source/kube measures the whole).
//
//	go test ./internal/state -run '^$' -bench TrackerColdMemory -benchmem -benchtime 3x
func BenchmarkTrackerColdMemory(b *testing.B) {
	const n = 10000
	svcs := make([]*v1.Service, n)
	slices := make([]*discovery.EndpointSlice, n)
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		svcs[i] = testService("bench", name, netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String())
		var eps []testEP
		for e := range 3 {
			eps = append(eps, ready(netip.AddrFrom4([4]byte{10, byte(128 + e), byte(i >> 8), byte(i)}).String()))
		}
		slices[i] = testSlice("bench", name+"-1", name, map[string]int32{"http": 8080}, eps...)
	}
	var live uint64
	for b.Loop() {
		base := benchmem.LiveHeap()
		tr := NewTracker(Options{NodeName: "node-a"})
		for i := range n {
			tr.UpsertService(svcs[i])
			tr.UpsertEndpointSlice(slices[i])
		}
		if snap, _ := tr.Snapshot(); snap.Len() != n {
			b.Fatalf("%d ServicePorts, want %d", snap.Len(), n)
		}
		b.StopTimer()
		live = benchmem.LiveHeap() - base
		runtime.KeepAlive(tr)
		b.StartTimer()
	}
	b.ReportMetric(float64(live)/(1<<20), "live-MiB")
}
