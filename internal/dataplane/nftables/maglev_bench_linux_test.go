//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

// mhSnapshot has n ClusterIP Services of one scheduler with e endpoints each.
func mhSnapshot(n, e int, sched string) *state.Snapshot {
	specs := map[*spec][]state.Endpoint{}
	for i := range n {
		s := &spec{name: fmt.Sprintf("svc-%d", i), clusterIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String(),
			port: 80, scheduler: sched}
		var eps []state.Endpoint
		for j := range e {
			k := i*e + j
			eps = append(eps, ep(netip.AddrFrom4([4]byte{10, 244, byte(k >> 8), byte(k)}).String(), 8080))
		}
		specs[s] = eps
	}
	return snapshotOf(specs)
}

// BenchmarkKernelMaglevLoad is the cost of Maglev tables in the kernel: a full sync
// (cold load) of Services with mh (4093 slots each at 3 endpoints, 16381 at 500)
// against sh (one map element per endpoint), and a one-Service change (an endpoint
// removed, then re-added) among them.
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelMaglev -benchtime 3x
func BenchmarkKernelMaglevLoad(b *testing.B) {
	requireRoot(b)
	for _, c := range []struct {
		sched         string
		services, eps int
	}{{"sh", 100, 3}, {"mh", 10, 3}, {"mh", 100, 3}, {"sh", 10, 500}, {"mh", 10, 500}} {
		snap := mhSnapshot(c.services, c.eps, c.sched)
		name := fmt.Sprintf("%s/services=%d/endpoints=%d", c.sched, c.services, c.eps)
		b.Run(name+"/full", func(b *testing.B) {
			ns := newNetns(b, "bench")
			for b.Loop() {
				p, err := newCoreProxier(testDPOptions())
				if err != nil {
					b.Fatal(err)
				}
				p.useNetns(ns.fd)
				st, err := p.Sync(context.Background(), snap, state.ChangeSet{})
				if err != nil || !st.Full {
					b.Fatalf("full sync: %v (full=%v)", err, st.Full)
				}
				b.ReportMetric(float64(st.Written["ip"]), "written/op")
			}
		})
		b.Run(name+"/one-change", func(b *testing.B) {
			ns := newNetns(b, "bench")
			p, err := newCoreProxier(testDPOptions())
			if err != nil {
				b.Fatal(err)
			}
			p.useNetns(ns.fd)
			if _, err := p.Sync(context.Background(), snap, state.ChangeSet{}); err != nil {
				b.Fatal(err)
			}
			name := snap.SortedNames()[0]
			all := snap.EndpointMap[name]
			cur := snap
			i := 0
			for b.Loop() {
				if i%2 == 0 {
					cur = withEndpoints(cur, map[state.ServicePortName][]state.Endpoint{name: all[1:]})
				} else {
					cur = withEndpoints(cur, map[state.ServicePortName][]state.Endpoint{name: all})
				}
				i++
				st, err := p.Sync(context.Background(), cur, state.ChangeSet{Ports: map[state.ServicePortName]struct{}{name: {}}})
				if err != nil || st.Full {
					b.Fatalf("partial sync: %v (full=%v)", err, st.Full)
				}
				b.ReportMetric(float64(st.Written["ip"]), "written/op")
			}
		})
	}
}
