package userspace

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

// The benchmarks compare the relay with direct loopback; docs/performance.md
// records their ratios. Run them with:
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/dataplane/userspace/

const streamChunk = 128 << 10

// sink counts what it reads from each connection and reports totals on done.
func startSink(b *testing.B) (netip.AddrPort, chan int64) {
	done := make(chan int64, 1)
	addr := serveTCP(b, func(c *net.TCPConn) {
		// Large reads, as a bulk receiver would do: io.Discard reads 8 KiB.
		var n int64
		buf := make([]byte, 256<<10)
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				break
			}
		}
		c.Close()
		done <- n
	})
	return addr, done
}

// proxyTo builds a proxier with one Service in front of backend.
func proxyTo(b *testing.B, backend netip.AddrPort) netip.AddrPort {
	ip := randLoopback()
	s := newSvc("bench", v1.ProtocolTCP, ip, freePort(b, "tcp", ip), testBackend{addr: backend})
	p, _ := testProxier(b, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(b, p, sn, allChanged(sn))
	return s.addr()
}

// BenchmarkTCPStream is the throughput of one TCP stream, client to server.
func BenchmarkTCPStream(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			sink, done := startSink(b)
			target := sink
			if via == "proxy" {
				target = proxyTo(b, sink)
			}
			c, err := net.Dial("tcp", target.String())
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, streamChunk)
			b.SetBytes(streamChunk)
			cpu0 := benchcpu.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			got := <-done // everything written has arrived
			b.StopTimer()
			// CPU per byte is what a busy node pays, whatever the wall clock says.
			b.ReportMetric(float64(benchcpu.Now()-cpu0)/(float64(b.N)*streamChunk/(1<<20)), "cpu-ns/MiB")
			c.Close()
			if got != int64(b.N)*streamChunk {
				b.Fatalf("sink got %d bytes, want %d", got, int64(b.N)*streamChunk)
			}
		})
	}
}

// startGreeter writes one byte to each connection and closes it first, so the
// TIME_WAIT state stays on the server side and client ports do not run out.
func startGreeter(b testing.TB) netip.AddrPort {
	l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(randLoopback(), 0)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte{'x'})
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// BenchmarkNewConnection is one complete short connection: connect, receive the
// server's first byte, see it close. Through the proxy that includes the accept,
// the endpoint choice and the relay's own connect to the endpoint. Connections
// are made one after the other as fast as the client goes; any that fails (a
// refusal, a reset instead of the close) fails the benchmark. The test
// is 20,000 of them:
//
//	go test -run '^$' -bench NewConnection -benchtime 20000x ./internal/dataplane/userspace/
func BenchmarkNewConnection(b *testing.B) {
	for _, via := range []string{"direct", "proxy"} {
		b.Run(via, func(b *testing.B) {
			target := startGreeter(b)
			if via == "proxy" {
				target = proxyTo(b, target)
			}
			one := make([]byte, 1)
			failures := 0
			var first error
			cpu0 := benchcpu.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := shortExchange(target, one); err != nil {
					if failures++; first == nil {
						first = err
					}
				}
			}
			b.StopTimer()
			if failures != 0 {
				b.Fatalf("%d of %d connections failed, first: %v", failures, b.N, first)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
			b.ReportMetric(float64(benchcpu.Now()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkChooseEndpoint is the per-connection cost of finding a Service's
// frontend and choosing an endpoint (and the connection accounting around it), with
// 1 and 10,000 Services of 3 endpoints. "same" sends every connection to one Service
// while the others exist, the case the iptables chain walk makes O(n); "spread"
// goes round all Services, so it also pays cache misses on cold Service state.
// Listeners are not opened (the kernel's socket lookup finds them), so the cost
// measured is kproxy's own: the frontend map and the scheduler.
func BenchmarkChooseEndpoint(b *testing.B) {
	for _, n := range []int{1, 10000} {
		p, keys := choiceProxier(b, n)
		for _, pattern := range []string{"same", "spread"} {
			b.Run(fmt.Sprintf("services=%d/%s", n, pattern), func(b *testing.B) {
				stride := 7919 // prime: visits every Service in a cache-unfriendly order
				if pattern == "same" {
					stride = 0
				}
				src := netip.MustParseAddrPort("192.168.0.1:40000")
				now := time.Now()
				cpu0 := benchcpu.Now()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					fe := p.frontends[keys[(i*stride)%len(keys)]]
					l, ok := fe.choose(src, now, &p.classify)
					if !ok {
						b.Fatal("no endpoint")
					}
					l.established(true)
					l.done()
				}
				b.StopTimer()
				// The machine is shared: CPU time per choice is steadier than wall time.
				b.ReportMetric(float64(benchcpu.Now()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkSync is the cost of Sync for n Services without their sockets: "cold"
// from empty, "one" for one changed Service among n.
func BenchmarkSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs := benchServices(n)
		sn := snap(state.NodeInfo{}, svcs...)
		b.Run(fmt.Sprintf("services=%d/cold", n), func(b *testing.B) {
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := syncOnlyProxier(b, svcs)
				b.StartTimer()
				cpu0 := benchcpu.Now()
				mustSync(b, p, sn, allChanged(sn))
				cpu += benchcpu.Now() - cpu0
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("services=%d/heap", n), func(b *testing.B) {
			// The live heap a synced Proxier keeps per Service (3 endpoints, one
			// frontend), without sockets: the part of peak RSS that is the
			// dataplane's own (docs/performance.md, "Userspace at scale").
			var perService float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				before := liveHeap()
				b.StartTimer()
				p := syncOnlyProxier(b, svcs)
				mustSync(b, p, sn, allChanged(sn))
				b.StopTimer()
				perService = float64(liveHeap()-before) / float64(n)
				runtime.KeepAlive(p)
				b.StartTimer()
			}
			b.ReportMetric(perService, "live-B/service")
		})
		b.Run(fmt.Sprintf("services=%d/one", n), func(b *testing.B) {
			p := syncOnlyProxier(b, svcs)
			mustSync(b, p, sn, allChanged(sn))
			// Two snapshots that differ in the weight of one endpoint of one Service.
			var next [2]*state.Snapshot
			var changed state.ChangeSet
			for w := range next {
				one := *svcs[n/2]
				one.eps = append([]state.Endpoint(nil), svcs[n/2].eps...)
				one.eps[0].Weight = 2 + w
				next[w] = snap(state.NodeInfo{}, svcs...)
				next[w].EndpointMap[one.sp.Name] = one.eps
				changed = allChanged(snap(state.NodeInfo{}, &one))
			}
			cpu0 := benchcpu.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mustSync(b, p, next[i%2], changed)
			}
			b.StopTimer()
			b.ReportMetric(float64(benchcpu.Now()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// syncOnlyProxier is a Proxier that opens no sockets and adds Service addresses
// to a fake host, as root would to kproxy0.
func syncOnlyProxier(b *testing.B, svcs []*svc) *Proxier {
	p, _ := testProxier(b, nil)
	p.listen = func(*frontend) error { return nil }
	p.addrs = &fakeAddrs{root: true, added: map[netip.Addr]bool{}}
	return p
}

func benchServices(n int) []*svc {
	svcs := make([]*svc, 0, n)
	for i := 0; i < n; i++ {
		ip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		s := newSvc(fmt.Sprintf("s%d", i), v1.ProtocolTCP, ip, 80)
		for j := 0; j < 3; j++ {
			s.eps = append(s.eps, state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)}),
				Port: int32(8080 + j), Ready: true, Weight: 1})
		}
		svcs = append(svcs, s)
	}
	return svcs
}

// choiceProxier syncs n ClusterIP Services without opening their sockets.
func choiceProxier(b *testing.B, n int) (*Proxier, []feKey) {
	svcs := benchServices(n)
	p := syncOnlyProxier(b, svcs)
	sn := snap(state.NodeInfo{}, svcs...)
	mustSync(b, p, sn, allChanged(sn))
	keys := make([]feKey, len(svcs))
	for i, s := range svcs {
		keys[i] = feKey{v1.ProtocolTCP, s.addr()}
	}
	return p, keys
}

// BenchmarkSyncLargeService is one Service with n endpoints: "cold" from empty,
// "endpoint" for one endpoint of it moved (the change whose cost should grow
// with the change, not with the Service).
func BenchmarkSyncLargeService(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s := largeService(n)
		sn := snap(state.NodeInfo{}, s)
		b.Run(fmt.Sprintf("endpoints=%d/cold", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := syncOnlyProxier(b, nil)
				b.StartTimer()
				mustSync(b, p, sn, allChanged(sn))
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/endpoint", n), func(b *testing.B) {
			p := syncOnlyProxier(b, nil)
			mustSync(b, p, sn, allChanged(sn))
			// Two snapshots that differ in the address of one endpoint: it
			// leaves the middle and comes back at the end, keeping the list
			// sorted as the Tracker gives it.
			var next [2]*state.Snapshot
			for w := range next {
				one := *s
				one.eps = slices.Delete(slices.Clone(s.eps), n/2, n/2+1)
				moved := s.eps[n/2]
				moved.IP = netip.AddrFrom4([4]byte{10, 250, 0, byte(w)})
				one.eps = append(one.eps, moved)
				next[w] = snap(state.NodeInfo{}, &one)
			}
			cpu0 := benchcpu.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mustSync(b, p, next[i%2], allChanged(sn))
			}
			b.StopTimer()
			b.ReportMetric(float64(benchcpu.Now()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// largeService is one ClusterIP Service with n endpoints.
func largeService(n int) *svc {
	s := newSvc("large", v1.ProtocolTCP, netip.MustParseAddr("10.96.0.1"), 80)
	for i := 0; i < n; i++ {
		s.eps = append(s.eps, state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)}),
			Port: 8080, Ready: true, Serving: true, Weight: 1})
	}
	return s
}
