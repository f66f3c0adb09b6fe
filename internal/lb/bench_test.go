//go:build linux

package lb

import (
	"fmt"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

var benchSizes = []int{10, 1000, 100000}

// benchBackends uses mixed weights 1..4 so that wrr, wlc, sed and twos do real work.
func benchBackends(n int) []Backend {
	bs := backends(n)
	for i := range bs {
		bs[i].Weight = 1 + i%4
	}
	return bs
}

// benchConns are 1024 distinct clients towards 1024 distinct destinations, so that
// the hash schedulers and the lblc caches see a realistic key mix.
func benchConns() []ConnInfo {
	cs := make([]ConnInfo, 1024)
	for i := range cs {
		cs[i] = client(i * 7919)
		cs[i].Dst = toDst(i).Dst
	}
	return cs
}

// BenchmarkPick measures one scheduling decision. docs/performance.md records:
//
//	go test ./internal/lb -run '^$' -bench 'Pick|ConnCycle' -benchtime 300000x -count 5
//	go test ./internal/lb -run '^$' -bench MHRebuild -benchtime 20x -count 5
func BenchmarkPick(b *testing.B) {
	benchEach(b, func(b *testing.B, s Scheduler, cs []ConnInfo) {
		for i := 0; b.Loop(); i++ {
			s.Pick(cs[i&1023])
		}
	})
}

// BenchmarkConnCycle measures a connection's whole scheduler cost: Pick, Opened when
// it is established, and Closed when it ends. Connections stay open for 16 further
// connections, so that loads differ and Closed touches an older backend.
func BenchmarkConnCycle(b *testing.B) {
	benchEach(b, func(b *testing.B, s Scheduler, cs []ConnInfo) {
		var ring [16]netip.AddrPort
		for i := 0; b.Loop(); i++ {
			slot := &ring[i&15]
			if slot.IsValid() {
				s.Closed(*slot, true)
				*slot = netip.AddrPort{}
			}
			if bk, ok := s.Pick(cs[i&1023]); ok {
				s.Opened(bk.Addr, true)
				*slot = bk.Addr
			}
		}
	})
}

func benchEach(b *testing.B, body func(b *testing.B, s Scheduler, cs []ConnInfo)) {
	cs := benchConns()
	for _, name := range Names() {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				s, err := New(name, Options{})
				if err != nil {
					b.Fatal(err)
				}
				s.Update(benchBackends(n))
				b.ResetTimer()
				start := benchcpu.Now()
				body(b, s, cs)
				benchcpu.Report(b, start)
			})
		}
	}
}

// BenchmarkMHRebuild measures the Maglev table build at the default size.
func BenchmarkMHRebuild(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s, _ := New("mh", Options{})
			// Two lists that differ in one weight, so that no Update is skipped.
			lists := [2][]Backend{benchBackends(n), benchBackends(n)}
			lists[1][0].Weight++
			start := benchcpu.Now()
			for i := 0; b.Loop(); i++ {
				s.Update(lists[i&1])
			}
			benchcpu.Report(b, start)
		})
	}
}

// BenchmarkWRRSkewed is wrr's hard case: one heavy backend per thousand light ones,
// where the high-weight passes would scan the whole list without the max-tree.
func BenchmarkWRRSkewed(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			bs := backends(n)
			for i := 0; i < n; i += 1000 {
				bs[i].Weight = 100
			}
			s, _ := New("wrr", Options{})
			s.Update(bs)
			c := client(0)
			start := benchcpu.Now()
			for b.Loop() {
				s.Pick(c)
			}
			benchcpu.Report(b, start)
		})
	}
}
