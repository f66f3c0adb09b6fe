package userspace

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
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

// BenchmarkTCPStreamPaired measures the relay's single-stream throughput against
// direct loopback in the same run: each op sends 16 MiB over a new direct
// connection and 16 MiB over a new relayed one (alternating which goes first), so
// that both see the same load on a shared machine. relay/direct is the ratio of
// throughputs over the whole run.
func BenchmarkTCPStreamPaired(b *testing.B) {
	const round = 16 << 20
	directSink, directDone := startSink(b)
	relaySink, relayDone := startSink(b)
	relay := proxyTo(b, relaySink)
	buf := make([]byte, streamChunk)
	send := func(to netip.AddrPort, done chan int64) time.Duration {
		start := time.Now()
		c, err := net.Dial("tcp", to.String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for sent := 0; sent < round; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		if got := <-done; got != round {
			b.Fatalf("sink got %d bytes, want %d", got, round)
		}
		return time.Since(start)
	}
	var direct, relayed time.Duration
	b.SetBytes(2 * round)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			direct += send(directSink, directDone)
			relayed += send(relay, relayDone)
		} else {
			relayed += send(relay, relayDone)
			direct += send(directSink, directDone)
		}
	}
	b.StopTimer()
	mib := float64(b.N) * round / (1 << 20)
	b.ReportMetric(mib/direct.Seconds(), "direct-MiB/s")
	b.ReportMetric(mib/relayed.Seconds(), "relay-MiB/s")
	b.ReportMetric(direct.Seconds()/relayed.Seconds(), "relay/direct")
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

// BenchmarkConcurrentConnections opens 10,000 connections through the relay,
// each answered by its endpoint, and holds them all open; it reports the
// descriptors the relay holds per idle connection. Clients, relay and endpoints
// share this process, which so needs 4 descriptors per connection (the relay's
// share is 2). The benchmark raises RLIMIT_NOFILE to 50,000 when it can
// (CAP_SYS_RESOURCE); otherwise it opens as many as fit in the limit it has and
// says so. Run it once:
//
//	go test -run '^$' -bench ConcurrentConnections -benchtime 1x ./internal/dataplane/userspace/
func BenchmarkConcurrentConnections(b *testing.B) {
	n := 10000
	if limit := raiseNofile(b, 50000); limit < 4*uint64(n)+2048 {
		n = int(limit-2048) / 4
		b.Logf("RLIMIT_NOFILE is %d and cannot be raised: %d connections (4 descriptors each in this process)", limit, n)
	}
	backend := startTCPBackend(b, "A")
	target := proxyTo(b, backend.addr)
	clients := make([]netip.Addr, 64) // the default per-client cap is an eighth of the global one
	for i := range clients {
		clients[i] = randLoopback()
	}
	for i := 0; i < b.N; i++ {
		fds0 := openFDs(b)
		pipes0 := pipesInUse()
		start := time.Now()
		conns := make([]net.Conn, 0, n)
		for j := 0; j < n; j++ {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: clients[j%len(clients)].AsSlice()}}
			c, err := d.Dial("tcp", target.String())
			if err != nil {
				b.Fatalf("connection %d: %v", j, err)
			}
			conns = append(conns, c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line := make([]byte, 2)
			if _, err := io.ReadFull(c, line); err != nil || string(line) != "A\n" {
				b.Fatalf("connection %d: endpoint answered %q, %v", j, line, err)
			}
		}
		opened := time.Since(start)
		// Client and endpoint hold one descriptor each; the rest is the relay's.
		relayFDs := float64(openFDs(b)-fds0-2*n) / float64(n)
		b.ReportMetric(relayFDs, "relay-fds/conn")
		b.ReportMetric(float64(pipesInUse()-pipes0), "pipes-in-use")
		b.ReportMetric(float64(n)/opened.Seconds(), "conns/s")
		b.ReportMetric(float64(n), "conns")
		for _, c := range conns {
			c.Close()
		}
	}
}

// raiseNofile raises the descriptor limit to want if it can and returns the
// limit in force.
func raiseNofile(b *testing.B, want uint64) uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		b.Fatal(err)
	}
	if r.Cur >= want {
		return r.Cur
	}
	up := syscall.Rlimit{Cur: want, Max: max(r.Max, want)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err != nil {
		return r.Cur
	}
	return want
}

func openFDs(b *testing.B) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
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
				next[w].Endpoints[one.sp.Name] = one.eps
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
