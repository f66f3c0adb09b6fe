//go:build linux

package userspace

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

// BenchmarkTCPStreamPaired measures the relay's single-stream throughput against
// direct loopback in the same run: each op sends 16 MiB over a new direct
// connection and 16 MiB over a new relayed one (alternating which goes first), so
// that both see the same load on a shared machine. relay/direct is the ratio of
// throughputs over the whole run. "process" runs the relay in a process of its
// own, as kproxy runs apart from clients and endpoints; "in-process" shares this
// process (and its GOMAXPROCS) with the client and the sink.
func BenchmarkTCPStreamPaired(b *testing.B) {
	for _, where := range []string{"process", "in-process"} {
		b.Run(where, func(b *testing.B) {
			directSink, directDone := startSink(b)
			relaySink, relayDone := startSink(b)
			var relay netip.AddrPort
			var relayCPU func() time.Duration
			if where == "process" {
				rp := startRelayProcess(b, relaySink, 0, -1)
				relay = rp.addr
				relayCPU = func() time.Duration {
					d, err := benchcpu.Of(rp.pid)
					if err != nil {
						b.Fatal(err)
					}
					return d
				}
			} else {
				relay = proxyTo(b, relaySink)
			}
			pairedStreams(b, directSink, directDone, relay, relayDone, relayCPU)
		})
	}
}

// BenchmarkRelaySendBuffer compares send buffers of the relay's sockets towards
// same-node peers (localSendBuffer) in one run: a direct stream and one through
// each of three relay processes, 16 MiB each per op, in rotating order.
// "sb128K/direct" is the throughput through the relay with 128 KiB over direct;
// "sb0K/direct" is the kernel's autotuning (the default).
func BenchmarkRelaySendBuffer(b *testing.B) {
	const round = 16 << 20
	variants := []int{-1, 0, 128 << 10, 1 << 20} // -1: direct
	targets := make([]netip.AddrPort, len(variants))
	dones := make([]chan int64, len(variants))
	for j, v := range variants {
		targets[j], dones[j] = startSink(b)
		if v >= 0 {
			targets[j] = startRelayProcess(b, targets[j], 0, v).addr
		}
	}
	tot := make([]time.Duration, len(variants))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range variants {
			j := (k + i) % len(variants)
			tot[j] += sendStream(b, targets[j], dones[j], round)
		}
	}
	b.StopTimer()
	for j, v := range variants {
		if v >= 0 {
			b.ReportMetric(tot[0].Seconds()/tot[j].Seconds(), fmt.Sprintf("sb%dK/direct", v>>10))
		}
	}
}

// sendStream sends size bytes over a new connection to to, half-closes and
// waits for the sink to report them all (done); it returns the time taken.
func sendStream(b *testing.B, to netip.AddrPort, done chan int64, size int) time.Duration {
	buf := make([]byte, streamChunk)
	start := time.Now()
	c, err := net.Dial("tcp", to.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if got := <-done; got != int64(size) {
		b.Fatalf("sink got %d bytes, want %d", got, size)
	}
	return time.Since(start)
}

// pairedStreams runs BenchmarkTCPStreamPaired's rounds. With relayCPU (the relay
// process's CPU time so far) it also reports the CPU time per MiB of the relay,
// and of this process: the clients and sinks of both streams.
func pairedStreams(b *testing.B, directSink netip.AddrPort, directDone chan int64, relay netip.AddrPort, relayDone chan int64, relayCPU func() time.Duration) {
	const round = 16 << 20
	send := func(to netip.AddrPort, done chan int64) time.Duration { return sendStream(b, to, done, round) }
	var direct, relayed, relayCPU0 time.Duration
	if relayCPU != nil {
		relayCPU0 = relayCPU()
	}
	cpu0 := benchcpu.Now()
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
	if relayCPU != nil {
		b.ReportMetric(float64((relayCPU()-relayCPU0).Microseconds())/mib, "relay-cpu-us/MiB")
		b.ReportMetric(float64((benchcpu.Now()-cpu0).Microseconds())/(2*mib), "ends-cpu-us/MiB")
	}
}

// concurrentSpare is what BenchmarkConcurrentConnections leaves of the descriptor
// limit, in the relay's process and in its own, for everything but the
// connections' sockets: listeners, the pool of idle splice pipes (at most
// 2*maxIdlePipes), the runtime's epoll and pipes, standard streams.
const concurrentSpare = 200

// BenchmarkConcurrentConnections opens as many connections through one relay as
// fit in the descriptor limit, up to the 10,000, and holds them all open,
// each answered by its endpoint; it reports the descriptors the relay holds per
// connection. The relay runs in a process of its own (startRelayProcess), capped
// at that many connections; this process holds the clients and the endpoint's
// sockets. Both processes need 2 descriptors per connection, so with this VM's
// hard limit of 20,000 (which cannot be raised) 9,900 fit. test/e2e/ipvs's
// TestGuestUserspaceRelayHoldsConcurrentConnections holds 10,000 through the
// daemon in the VM, under the node's default limit. Run it once:
//
//	go test -run '^$' -bench ConcurrentConnections -benchtime 1x ./internal/dataplane/userspace/
func BenchmarkConcurrentConnections(b *testing.B) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	n := min(10000, (int(min(lim.Cur, 1<<30))-concurrentSpare)/2)
	backend := startTCPBackend(b, "A")
	relay := startRelayProcess(b, backend.addr, n, -1)
	for i := 0; i < b.N; i++ {
		fds0 := countFDs(b, relay.pid)
		start := time.Now()
		conns := make([]net.Conn, 0, n)
		for j := 0; j < n; j++ {
			c, err := net.DialTimeout("tcp", relay.addr.String(), 5*time.Second)
			if err != nil {
				b.Fatalf("connection %d of %d: %v", j, n, err)
			}
			conns = append(conns, c)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line := make([]byte, 2)
			if _, err := io.ReadFull(c, line); err != nil || string(line) != "A\n" {
				b.Fatalf("connection %d of %d: endpoint answered %q, %v", j, n, line, err)
			}
		}
		opened := time.Since(start)
		fds := countFDs(b, relay.pid)
		b.ReportMetric(float64(fds-fds0)/float64(n), "relay-fds/conn")
		b.ReportMetric(float64(fds), "relay-fds")
		b.ReportMetric(float64(n), "conns")
		b.ReportMetric(float64(n)/opened.Seconds(), "conns/s")
		b.Logf("RLIMIT_NOFILE %d: %d connections open, the relay process holds %d descriptors (%d before)", lim.Cur, n, fds, fds0)
		for _, c := range conns {
			c.Close()
		}
		// The next round needs the descriptors back.
		for deadline := time.Now().Add(time.Minute); countFDs(b, relay.pid) > fds0+concurrentSpare; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("the relay still holds %d descriptors a minute after its connections closed", countFDs(b, relay.pid))
			}
		}
	}
}
