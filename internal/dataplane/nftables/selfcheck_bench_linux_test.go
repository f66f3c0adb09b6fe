//go:build linux

package nftables

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

// BenchmarkKernelSelfCheck is the periodic self-check of a large table (3
// endpoints per Service) in the kernel, in a private network namespace (root only):
// "idle" with the ruleset generation unchanged (the gate: one GETGEN), "digest"
// after the generation moved (every rule dumped and every set read back and
// compared). "shared": 10,000 Services, elements of the shared maps only;
// "own-chains": 1,000 Services with session affinity, each with a service chain,
// three endpoint chains and three affinity sets (10,000 of them took over 15
// minutes to load on the loaded test VM). "other-table": another table's commit
// (table ip bench-other added or deleted, in process) before each check, which the
// event watch tells apart (result other-tables); "other-table-nowatch" the same
// without the watch, read back as before it.
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelSelfCheck -benchtime 20x
func BenchmarkKernelSelfCheck(b *testing.B) {
	requireRoot(b)
	for _, shape := range []string{"shared", "own-chains"} {
		b.Run(shape, func(b *testing.B) { benchSelfCheck(b, shape) })
	}
}

func benchSelfCheck(b *testing.B, shape string) {
	n := 10000
	if shape == "own-chains" {
		n = 1000
	}
	snap := bigSnapshot(n, 3)
	if shape == "own-chains" {
		for _, sp := range snap.ServiceMap {
			sp.AffinityTimeout = 600 * time.Second
		}
	}
	ns := newNetns(b, "selfcheck")
	p, err := newCoreProxier(testDPOptions())
	if err != nil {
		b.Fatal(err)
	}
	p.useNetns(ns.fd)
	ctx := context.Background()
	if _, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Cleanup(ctx) }()
	check := func(b *testing.B, forget bool) {
		b.Helper()
		if forget {
			p.gate.known = false // as after another table's commit
		}
		if bad, err := p.Damaged(ctx); bad || err != nil {
			b.Fatalf("Damaged: %v, %v", bad, err)
		}
	}
	check(b, true) // the first digest also digests the rendered chains once
	// Another table's commit, in process: adds or deletes table ip bench-other.
	fc, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		b.Fatal(err)
	}
	other, added := &nftables.Table{Name: "bench-other", Family: nftables.TableFamilyIPv4}, false
	foreign := func(b *testing.B) {
		if added {
			fc.DelTable(other)
		} else {
			fc.AddTable(other)
		}
		added = !added
		if err := fc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"idle", "digest", "other-table", "other-table-nowatch"} {
		b.Run(fmt.Sprintf("%s/services=%d", mode, n), func(b *testing.B) {
			if mode == "other-table-nowatch" { // as before the watch: read back
				p.noWatch = true
				p.watch.close()
				p.watch = nil
			}
			want := map[string]string{"idle": "unchanged", "digest": "verified",
				"other-table": "other-tables", "other-table-nowatch": "verified"}[mode]
			before := checks(p.Proxier)[want]
			cpu := benchcpu.Now()
			for b.Loop() {
				if strings.HasPrefix(mode, "other-table") {
					foreign(b)
				}
				check(b, mode == "digest")
			}
			benchcpu.Report(b, cpu)
			if got := checks(p.Proxier)[want] - before; got != b.N {
				b.Fatalf("%d of %d checks %s", got, b.N, want)
			}
		})
	}
}

// BenchmarkKernelFullSyncWatch is what the event watch adds to kproxy's own
// writes: each iteration runs one cold full sync of 10,000 Services x 3 endpoints
// with the watch and one without (alternately first), each into an emptied private
// namespace (root only). The watch is closed during kproxy's commits (else the
// kernel builds a notification of every element and the watch reads them all) and
// restarted after: the sync counts until the restarted watch answers. Reported per
// sync: wall and process CPU (user + system, the kernel's work for our requests
// included) of each.
//
//	go test ./internal/dataplane/nftables -run '^$' -bench KernelFullSyncWatch -benchtime 5x
func BenchmarkKernelFullSyncWatch(b *testing.B) {
	requireRoot(b)
	snap := bigSnapshot(10000, 3)
	ns := newNetns(b, "watchsync")
	ctx := context.Background()
	var wall, cpu [2]time.Duration
	i := 0
	for b.Loop() {
		for k := range 2 {
			watch := (i+k)%2 == 0
			p, err := newCoreProxier(testDPOptions())
			if err != nil {
				b.Fatal(err)
			}
			p.useNetns(ns.fd)
			p.noWatch = !watch
			c0, t0 := benchcpu.Now(), time.Now()
			if st, err := p.Sync(ctx, snap, state.ChangeSet{}); err != nil || !st.Full {
				b.Fatalf("full sync: %v (full=%v)", err, st.Full)
			}
			if watch && !p.watch.untouched(p.gate.gen, p.gate.gen) {
				b.Fatal("the watch did not follow the sync")
			}
			j := 0
			if !watch {
				j = 1
			}
			wall[j] += time.Since(t0)
			cpu[j] += benchcpu.Now() - c0
			if err := p.Cleanup(ctx); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	n := float64(b.N)
	b.ReportMetric(float64(wall[0].Milliseconds())/n, "watch-ms/sync")
	b.ReportMetric(float64(cpu[0].Milliseconds())/n, "watch-cpu-ms/sync")
	b.ReportMetric(float64(wall[1].Milliseconds())/n, "nowatch-ms/sync")
	b.ReportMetric(float64(cpu[1].Milliseconds())/n, "nowatch-cpu-ms/sync")
}
