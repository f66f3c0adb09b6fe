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
		for _, sp := range snap.Services {
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
