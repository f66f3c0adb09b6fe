//go:build linux

package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchcpu"
	"kproxy.dev/kproxy/internal/testing/fakenft"
)

// largeEndpoints is one Service's e ready endpoints in 10.244.0.0/16.
func largeEndpoints(e int) []state.Endpoint {
	eps := make([]state.Endpoint, e)
	for k := range eps {
		eps[k] = state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte((k + 1) >> 8), byte(k + 1)}), Port: 8080,
			Ready: true, Serving: true, Weight: 1}
	}
	return eps
}

func largeSnapshot(e int) (*state.Snapshot, state.ServicePortName) {
	sp := spec{name: "large", clusterIP: "10.96.0.1", port: 80}.servicePort()
	return &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{sp.Name: sp},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{sp.Name: largeEndpoints(e)},
		Node:        state.NodeInfo{Name: "node-a"}}, sp.Name
}

// BenchmarkRenderLargeService renders one Service with 1,000 to 30,000 endpoints
// (issue 16): the render must grow linearly with them.
func BenchmarkRenderLargeService(b *testing.B) {
	for _, e := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("endpoints=%d", e), func(b *testing.B) {
			snap, _ := largeSnapshot(e)
			req := dataplane.NewRequest(snap)
			o := testOptions(familyIPv4)
			b.ReportAllocs()
			cpu := benchcpu.Now()
			for b.Loop() {
				renderAll(o, req)
			}
			benchcpu.Report(b, cpu)
		})
	}
}

// BenchmarkSyncLargeService is a cold sync of one large Service and a partial sync
// moving one of its endpoints, against the fake kernel (kproxy's render, diff and
// batch; the fake kernel's bookkeeping is included, the real kernel's is not).
func BenchmarkSyncLargeService(b *testing.B) {
	for _, e := range []int{1000, 10000, 30000} {
		snap, n := largeSnapshot(e)
		moved, _ := largeSnapshot(e)
		moved.EndpointMap[n][e/2].IP = netip.MustParseAddr("10.245.0.1")
		b.Run(fmt.Sprintf("cold/endpoints=%d", e), func(b *testing.B) {
			b.ReportAllocs()
			cpu := benchcpu.Now()
			for b.Loop() {
				p := benchProxier(b, fakenft.New())
				if _, err := p.Sync(context.Background(), snap, state.ChangeSet{}); err != nil {
					b.Fatal(err)
				}
			}
			benchcpu.Report(b, cpu)
		})
		b.Run(fmt.Sprintf("one-endpoint/endpoints=%d", e), func(b *testing.B) {
			p := benchProxier(b, fakenft.New())
			ctx := context.Background()
			if _, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil {
				b.Fatal(err)
			}
			snaps := [2]*state.Snapshot{snap, moved}
			cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{n: {}}}
			b.ReportAllocs()
			cpu := benchcpu.Now()
			i := 0
			for b.Loop() {
				i++
				st, err := p.Sync(ctx, snaps[i%2], cs)
				if err != nil {
					b.Fatal(err)
				}
				if st.Full {
					b.Fatal("one-endpoint change ran a full sync")
				}
			}
			benchcpu.Report(b, cpu)
		})
	}
}

// BenchmarkSyncBesideLargeService changes one small Service (one endpoint moved)
// while one large Service sits unchanged in the same snapshot, on the fake kernel.
func BenchmarkSyncBesideLargeService(b *testing.B) {
	for _, e := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("endpoints=%d", e), func(b *testing.B) {
			snaps := [2]*state.Snapshot{}
			small := spec{name: "small", clusterIP: "10.96.0.2", port: 80}
			for i, addr := range []string{"10.245.1.1", "10.245.1.2"} {
				snap, _ := largeSnapshot(e)
				sp := small.servicePort()
				snap.ServiceMap[sp.Name] = sp
				snap.EndpointMap[sp.Name] = []state.Endpoint{ep(addr, 8080)}
				snaps[i] = snap
			}
			p := benchProxier(b, fakenft.New())
			ctx := context.Background()
			if _, err := p.Sync(ctx, snaps[0], state.ChangeSet{}); err != nil {
				b.Fatal(err)
			}
			cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{small.portName(): {}}}
			b.ReportAllocs()
			cpu := benchcpu.Now()
			i := 0
			for b.Loop() {
				i++
				if st, err := p.Sync(ctx, snaps[i%2], cs); err != nil || st.Full {
					b.Fatalf("partial sync: %v", err)
				}
			}
			benchcpu.Report(b, cpu)
		})
	}
}

func benchProxier(b *testing.B, k *fakenft.Kernel) *coreProxier {
	b.Helper()
	p, err := newCoreProxier(testDPOptions())
	if err != nil {
		b.Fatal(err)
	}
	p.useConns(func() (nfConn, error) { return k.Conn(), nil })
	return p
}

// BenchmarkKernelLargeService is the same cold sync and one-endpoint change into
// the kernel, in a private network namespace (root only).
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelLargeService -benchtime 5x
func BenchmarkKernelLargeService(b *testing.B) {
	requireRoot(b)
	for _, e := range []int{1000, 10000, 30000} {
		snap, n := largeSnapshot(e)
		moved, _ := largeSnapshot(e)
		moved.EndpointMap[n][e/2].IP = netip.MustParseAddr("10.245.0.1")
		b.Run(fmt.Sprintf("cold/endpoints=%d", e), func(b *testing.B) {
			ns := newNetns(b, "bench")
			cpu := benchcpu.Now()
			for b.Loop() {
				p, err := newCoreProxier(testDPOptions())
				if err != nil {
					b.Fatal(err)
				}
				p.useNetns(ns.fd)
				if st, err := p.Sync(context.Background(), snap, state.ChangeSet{}); err != nil || !st.Full {
					b.Fatalf("full sync: %v (full=%v)", err, st.Full)
				}
			}
			benchcpu.Report(b, cpu)
		})
		b.Run(fmt.Sprintf("one-endpoint/endpoints=%d", e), func(b *testing.B) {
			ns := newNetns(b, "bench")
			p, err := newCoreProxier(testDPOptions())
			if err != nil {
				b.Fatal(err)
			}
			p.useNetns(ns.fd)
			ctx := context.Background()
			if _, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil {
				b.Fatal(err)
			}
			snaps := [2]*state.Snapshot{snap, moved}
			cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{n: {}}}
			cpu := benchcpu.Now()
			i := 0
			for b.Loop() {
				i++
				st, err := p.Sync(ctx, snaps[i%2], cs)
				if err != nil || st.Full {
					b.Fatalf("partial sync: %v (full=%v)", err, st.Full)
				}
				b.ReportMetric(float64(st.Written["ip"]), "written/op")
			}
			benchcpu.Report(b, cpu)
		})
	}
}
