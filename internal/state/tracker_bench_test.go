package state

import (
	"fmt"
	"net/netip"
	"testing"

	discovery "k8s.io/api/discovery/v1"
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
// services (one map copy) plus changes, never with services x changes.
func BenchmarkTrackerSnapshot(b *testing.B) {
	for _, services := range []int{1000, 10000} {
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
					if len(snap.Services) != services || len(cs.Ports) != changes {
						b.Fatalf("services %d changed %d", len(snap.Services), len(cs.Ports))
					}
				}
			})
		}
	}
}
