//go:build linux

package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchcpu"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// BenchmarkRenderLargeService renders one Service with 1,000 to 30,000 endpoints.
func BenchmarkRenderLargeService(b *testing.B) {
	for _, e := range largeServiceSizes {
		b.Run(fmt.Sprintf("endpoints=%d", e), func(b *testing.B) {
			snap := snapshot(largeService(e))
			cfg := testRenderConfig()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchcpu.Now()
			for i := 0; i < b.N; i++ {
				Render(snap, cfg)
			}
			benchcpu.Report(b, cpu)
		})
	}
}

// BenchmarkSyncBesideLargeService changes one small Service (one endpoint moved)
// while one large Service sits unchanged in the same snapshot: what a change to
// another Service costs next to it.
func BenchmarkSyncBesideLargeService(b *testing.B) {
	for _, e := range largeServiceSizes {
		b.Run(fmt.Sprintf("endpoints=%d", e), func(b *testing.B) {
			large := largeService(e)
			small := newSvc("bench", "small", "http", tcp, "10.96.0.2", 80).ep("10.245.1.1:8080", true, false)
			moved := newSvc("bench", "small", "http", tcp, "10.96.0.2", 80).ep("10.245.1.2:8080", true, false)
			snaps := [2]*state.Snapshot{snapshot(large, small), snapshot(large, moved)}
			p := newTestProxier(discardRunner{})
			ctx := context.Background()
			if _, err := p.Sync(ctx, snaps[0], changes()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchcpu.Now()
			for i := 0; i < b.N; i++ {
				if st, err := p.Sync(ctx, snaps[(i+1)%2], changes(small.sp.Name)); err != nil || st.Full {
					b.Fatalf("partial sync: %v", err)
				}
			}
			benchcpu.Report(b, cpu)
		})
	}
}

// BenchmarkSyncLargeService is kproxy's share (render, diff, restore input; a fake
// runner applies nothing) of a cold sync of one large Service and of a partial
// sync that moves one of its endpoints.
func BenchmarkSyncLargeService(b *testing.B) {
	for _, e := range largeServiceSizes {
		b.Run(fmt.Sprintf("cold/endpoints=%d", e), func(b *testing.B) {
			snap := snapshot(largeService(e))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchcpu.Now()
			for i := 0; i < b.N; i++ {
				p := newTestProxier(discardRunner{})
				if _, err := p.Sync(context.Background(), snap, changes()); err != nil {
					b.Fatal(err)
				}
			}
			benchcpu.Report(b, cpu)
		})
		b.Run(fmt.Sprintf("one-endpoint/endpoints=%d", e), func(b *testing.B) {
			s := largeService(e)
			snaps := [2]*state.Snapshot{snapshot(s), nil}
			moved := largeService(e)
			moved.eps[e/2].IP = netip.MustParseAddr("10.245.0.1")
			snaps[1] = snapshot(moved)
			p := newTestProxier(discardRunner{})
			ctx := context.Background()
			if _, err := p.Sync(ctx, snaps[0], changes()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := benchcpu.Now()
			for i := 0; i < b.N; i++ {
				st, err := p.Sync(ctx, snaps[(i+1)%2], changes(s.sp.Name))
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

// BenchmarkKernelLargeService is a one-endpoint change of one large Service into
// the kernel (nf_tables backend, a private namespace; root only): render, diff and
// iptables-restore (cpu-ns/op is kproxy's CPU, child-cpu-ns/op that of
// iptables-nft-restore, the kernel's work for its netlink calls included).
// "one-endpoint" moves one endpoint to a new address (one
// KUBE-SEP chain goes, one comes); "add-remove" alternately removes one endpoint
// and adds it back. Each runs with kube-proxy's flat KUBE-SVC chain
// (layout=flat), with bucket chains (layout=buckets; the threshold is set
// to half the size), and with bucket chains whose endpoints are all on other
// nodes, folded into them (layout=folded: no KUBE-SEP chains, render_fold.go),
// one after the other, so that their ratio comes from one run on a noisy
// machine.
//
//	go test ./internal/dataplane/iptables -run '^$' -bench KernelLargeService -benchtime 5x
func BenchmarkKernelLargeService(b *testing.B) {
	for _, e := range append([]int{100}, largeServiceSizes...) {
		for _, kind := range []string{"one-endpoint", "add-remove"} {
			for _, layout := range []string{"flat", "buckets", "folded"} {
				gen := largeService
				if layout == "folded" {
					gen = remoteLargeService
				}
				s, other := gen(e), gen(e)
				if kind == "one-endpoint" {
					other.eps[e/2].IP = netip.MustParseAddr("10.245.0.1")
				} else {
					other.eps = append(other.eps[:e/2:e/2], other.eps[e/2+1:]...)
				}
				b.Run(fmt.Sprintf("%s/endpoints=%d/layout=%s", kind, e, layout), func(b *testing.B) {
					above := e
					if layout != "flat" {
						above = e / 2
					}
					withBucketAbove(b, above)
					benchKernelChange(b, s, other)
				})
			}
		}
	}
}

// benchKernelChange syncs from into a fresh namespace, then alternates partial
// syncs between to and from.
func benchKernelChange(b *testing.B, from, to *svc) {
	env := netns.New(b, "ipt-bucket-bench")
	r := ExecRunner{Backend: BackendNFT, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}
	snaps := [2]*state.Snapshot{snapshot(from), snapshot(to)}
	p := newTestProxier(r)
	ctx := context.Background()
	if _, err := p.Sync(ctx, snaps[0], changes()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu, child := benchcpu.Now(), benchcpu.Children()
	for i := 0; i < b.N; i++ {
		if st, err := p.Sync(ctx, snaps[(i+1)%2], changes(from.sp.Name)); err != nil || st.Full {
			b.Fatalf("partial sync: %v", err)
		}
	}
	benchcpu.Report(b, cpu)
	benchcpu.ReportChildren(b, child)
}

// BenchmarkKernelRestoreFloor is what any restore costs next to one large
// Service (nf_tables backend, a private namespace; root only), by what it
// writes into a chain KUBE-FLOOR nothing jumps to:
//
//   - declare: only (re)declares the empty chain;
//   - no-verdict: appends a rule that matches a source address and has no
//     target (payload, cmp and counter expressions only);
//   - return: appends "-j RETURN" (an immediate verdict);
//   - jump: appends "-j KUBE-MARK-MASQ" (a jump to a chain);
//   - dnat: appends a DNAT rule as a KUBE-SEP chain has it;
//   - replace: replaces ("-R") the chain's only rule, "-j RETURN", in place;
//   - delete: deletes that rule ("-D"), and a second restore appends it back
//     (both timed: the cost of one is the difference with "return").
//
// The difference between "declare" and the others is the kernel's work on
// commit once a rule was added, which grows with the rules in the table, not
// with what the restore writes: the floor under any one-endpoint change. Each
// runs next to the Service with its endpoints' KUBE-SEP chains (layout=sep) and
// with its endpoints on other nodes, folded (layout=folded, render_fold.go).
//
//	go test ./internal/dataplane/iptables -run '^$' -bench KernelRestoreFloor -benchtime 10x
func BenchmarkKernelRestoreFloor(b *testing.B) {
	kinds := []struct {
		name        string
		setup, each string
	}{
		{"declare", "", ":KUBE-FLOOR - [0:0]\n"},
		{"no-verdict", "", ":KUBE-FLOOR - [0:0]\n-A KUBE-FLOOR -s 10.1.2.3/32\n"},
		{"return", "", ":KUBE-FLOOR - [0:0]\n-A KUBE-FLOOR -j RETURN\n"},
		{"jump", "", ":KUBE-FLOOR - [0:0]\n-A KUBE-FLOOR -j KUBE-MARK-MASQ\n"},
		{"dnat", "", ":KUBE-FLOOR - [0:0]\n-A KUBE-FLOOR -p tcp -m tcp -j DNAT --to-destination 10.1.2.3:8080\n"},
		{"replace", ":KUBE-FLOOR - [0:0]\n-A KUBE-FLOOR -j RETURN\n", "-R KUBE-FLOOR 1 -j RETURN\n"},
	}
	for _, e := range append([]int{100}, largeServiceSizes...) {
		for _, kind := range kinds {
			for _, layout := range []string{"sep", "folded"} {
				gen := largeService
				if layout == "folded" {
					gen = remoteLargeService
				}
				b.Run(fmt.Sprintf("endpoints=%d/%s/layout=%s", e, kind.name, layout), func(b *testing.B) {
					env := netns.New(b, "ipt-bucket-floor")
					r := ExecRunner{Backend: BackendNFT, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}
					p := newTestProxier(r)
					ctx := context.Background()
					if _, err := p.Sync(ctx, snapshot(gen(e)), changes()); err != nil {
						b.Fatal(err)
					}
					if kind.setup != "" {
						if err := r.Restore(ctx, []byte("*nat\n"+kind.setup+"COMMIT\n"), true); err != nil {
							b.Fatal(err)
						}
					}
					in := []byte("*nat\n" + kind.each + "COMMIT\n")
					b.ResetTimer()
					child := benchcpu.Children()
					for i := 0; i < b.N; i++ {
						if err := r.Restore(ctx, in, true); err != nil {
							b.Fatal(err)
						}
					}
					benchcpu.ReportChildren(b, child)
				})
			}
		}
	}
}
