//go:build linux

package userspace

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/testing/benchcpu"
)

// benchRoleEnv makes the test binary one process of BenchmarkTCPStreamProcesses
// (TestMain): "sink ADDR", "source ADDR BYTES", "client" or
// "refrelay ADDR BACKEND".
const benchRoleEnv = "KPROXY_USERSPACE_BENCH_ROLE"

// BenchmarkTCPStreamProcesses is one bulk stream with every party in a process
// of its own, as on a node: a client, a server (the endpoint) and, between them,
// nothing (direct), kproxy's relay, or ref: a minimal relay (two blocking splice
// loops on locked threads, same pipe and socket buffers as kproxy's), meant as
// the floor for a relay process on this kernel (it costs more than kproxy's:
// blocking waits wake it more often). "up" sends from the client to a sink, "down"
// from a source to the client. Each op moves 64 MiB over a new connection of each
// kind, in rotating order, so all see the same load; "kproxy/direct" and
// "ref/direct" are throughput ratios over the whole run. It also reports each
// process's CPU time per MiB (client, server, relay: c, s, x) and context
// switches per MiB (cs), whose sum bounds the throughput when the cores are
// busy. With $KPROXY_BENCH_BASE_RELAY, the test binary of another version of
// this package (built from main, say), that version's relay is one more
// variant, "base":
//
//	go test -c -o /tmp/us.test ./internal/dataplane/userspace/
//	/tmp/us.test -test.run '^$' -test.bench TCPStreamProcesses -test.benchtime 8x -test.count 3
func BenchmarkTCPStreamProcesses(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		b.Run(dir, func(b *testing.B) { streamProcesses(b, dir) })
	}
}

func streamProcesses(b *testing.B, dir string) {
	const round = 64 << 20
	srvIP := randLoopback()
	srvAddr := netip.AddrPortFrom(srvIP, uint16(freePort(b, "tcp", srvIP)))
	role := "sink " + srvAddr.String()
	if dir == "down" {
		role = fmt.Sprintf("source %s %d", srvAddr, round)
	}
	server := startBenchChild(b, role)
	client := startBenchChild(b, "client")
	refIP := randLoopback()
	refAddr := netip.AddrPortFrom(refIP, uint16(freePort(b, "tcp", refIP)))
	ref := startBenchChild(b, fmt.Sprintf("refrelay %s %s", refAddr, srvAddr))
	kp := startRelayProcess(b, srvAddr, 0, -1)

	type variant struct {
		name    string
		to      netip.AddrPort
		pid     int // the relay's; 0 for none
		secs    float64
		c, s, x time.Duration
		cs      [3]int64
	}
	vs := []*variant{{name: "direct", to: srvAddr}, {name: "kproxy", to: kp.addr, pid: kp.pid}, {name: "ref", to: refAddr, pid: ref.pid}}
	if bin := os.Getenv("KPROXY_BENCH_BASE_RELAY"); bin != "" {
		base := startRelayProcessFrom(b, bin, srvAddr, 0, -1)
		vs = append(vs, &variant{name: "base", to: base.addr, pid: base.pid})
	}
	run := func(v *variant) {
		var x0 time.Duration
		var xcs0 int64
		if v.pid != 0 {
			x0, xcs0 = procCPU(b, v.pid), ctxSwitches(b, v.pid)
		}
		f := client.ask(b, fmt.Sprintf("%s %d %s", v.to, round, dir)) // bytes elapsed-ns cpu-ns cs
		g := server.line(b)                                           // bytes elapsed-ns cpu-ns cs
		if f[0] != round || g[0] != round {
			b.Fatalf("%s: client moved %d bytes, server %d, want %d", v.name, f[0], g[0], round)
		}
		v.secs += float64(f[1]) / 1e9
		v.c += time.Duration(f[2])
		v.s += time.Duration(g[2])
		v.cs[0] += f[3]
		v.cs[1] += g[3]
		if v.pid != 0 {
			v.x += procCPU(b, v.pid) - x0
			v.cs[2] += ctxSwitches(b, v.pid) - xcs0
		}
	}
	b.SetBytes(int64(len(vs)) * round)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range vs {
			run(vs[(i+k)%len(vs)])
		}
	}
	b.StopTimer()
	mib := float64(b.N) * round / (1 << 20)
	perMiB := func(d time.Duration) float64 { return float64(d.Microseconds()) / mib }
	for _, v := range vs {
		if v.name != "direct" {
			b.ReportMetric(vs[0].secs/v.secs, v.name+"/direct")
		}
		b.ReportMetric(perMiB(v.c), v.name+"-c-us/MiB")
		b.ReportMetric(perMiB(v.s), v.name+"-s-us/MiB")
		b.ReportMetric(float64(v.cs[0]+v.cs[1])/mib, v.name+"-cs+s-cs/MiB")
		if v.pid != 0 {
			b.ReportMetric(perMiB(v.x), v.name+"-x-us/MiB")
			b.ReportMetric(float64(v.cs[2])/mib, v.name+"-x-cs/MiB")
		}
	}
}

// benchChild is a process of BenchmarkTCPStreamProcesses.
type benchChild struct {
	pid int
	in  io.Writer
	out *bufio.Reader
}

func startBenchChild(b *testing.B, role string) *benchChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchRoleEnv+"="+role)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	c := &benchChild{pid: cmd.Process.Pid, in: in, out: bufio.NewReader(out)}
	if l, err := c.out.ReadString('\n'); strings.TrimSpace(l) != relayReady {
		b.Fatalf("%s: %q, %v", role, l, err)
	}
	return c
}

func (c *benchChild) ask(b *testing.B, req string) []int64 {
	if _, err := fmt.Fprintln(c.in, req); err != nil {
		b.Fatal(err)
	}
	return c.line(b)
}

// line reads one line of integers.
func (c *benchChild) line(b *testing.B) []int64 {
	l, err := c.out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	var v []int64
	for _, f := range strings.Fields(l) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("child said %q", l)
		}
		v = append(v, n)
	}
	if len(v) != 4 {
		b.Fatalf("child said %q", l)
	}
	return v
}

func procCPU(b *testing.B, pid int) time.Duration {
	d, err := benchcpu.Of(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// ctxSwitches sums the context switches of pid's threads.
func ctxSwitches(b *testing.B, pid int) int64 {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, l := range strings.Split(string(st), "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasSuffix(f[0], "ctxt_switches:") {
				k, _ := strconv.ParseInt(f[1], 10, 64)
				n += k
			}
		}
	}
	return n
}

// selfUsage is this process's CPU time and context switches so far.
func selfUsage() (time.Duration, int64) {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}

// runBenchChild is the body of a BenchmarkTCPStreamProcesses process.
func runBenchChild(role string) error {
	f := strings.Fields(role)
	switch {
	case len(f) == 2 && f[0] == "sink":
		return benchSink(f[1])
	case len(f) == 3 && f[0] == "source":
		size, err := strconv.Atoi(f[2])
		if err != nil {
			return err
		}
		return benchSource(f[1], size)
	case len(f) == 1 && f[0] == "client":
		return benchClient()
	case len(f) == 3 && f[0] == "refrelay":
		return refRelay(f[1], f[2])
	}
	return fmt.Errorf("%s=%q: unknown role", benchRoleEnv, role)
}

// benchSink reads each connection to its end (readAll) and then prints the
// bytes, time, CPU time and context switches it took.
func benchSink(addr string) error {
	return benchServe(addr, func(c net.Conn) int64 { return readAll(c) })
}

// benchSource writes size bytes to each connection (writeAll), closes it and
// prints what benchSink prints.
func benchSource(addr string, size int) error {
	return benchServe(addr, func(c net.Conn) int64 { return writeAll(c, size) })
}

func benchServe(addr string, serve func(net.Conn) int64) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(relayReady)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		cpu0, cs0 := selfUsage()
		start := time.Now()
		n := serve(c)
		c.Close()
		el := time.Since(start)
		cpu, cs := selfUsage()
		fmt.Println(n, el.Nanoseconds(), int64(cpu-cpu0), cs-cs0)
	}
}

// readAll reads c to its end with large reads, as a bulk receiver (startSink).
func readAll(c net.Conn) int64 {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if err != nil {
			return n
		}
	}
}

// writeAll writes size bytes to c in streamChunk writes.
func writeAll(c net.Conn, size int) int64 {
	buf := make([]byte, streamChunk)
	var n int64
	for n < int64(size) {
		k, err := c.Write(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	return n
}

// benchClient serves requests "ADDR BYTES up|down" on standard input. up: it
// sends BYTES over a new connection (writeAll), half-closes and waits for the
// peer's close (the sink has read all); down: it reads the connection to its end
// (readAll). It prints the bytes moved, the time, CPU time and context switches
// it took.
func benchClient() error {
	fmt.Println(relayReady)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var addr, dir string
		var size int
		if _, err := fmt.Sscan(in.Text(), &addr, &size, &dir); err != nil {
			return err
		}
		cpu0, cs0 := selfUsage()
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		var n int64
		if dir == "up" {
			n = writeAll(c, size)
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
		} else {
			n = readAll(c)
		}
		c.Close()
		el := time.Since(start)
		cpu, cs := selfUsage()
		fmt.Println(n, el.Nanoseconds(), int64(cpu-cpu0), cs-cs0)
	}
	return in.Err()
}

// refRelay is the reference relay: per connection, two threads each splice one
// direction socket -> pipe -> socket with blocking calls, with kproxy's pipe size
// and its buffers and congestion control towards local peers (sizeLocal,
// congestion_linux.go).
func refRelay(addr, backend string) error {
	runtime.GOMAXPROCS(64) // two threads per connection hold a P each
	to, err := netip.ParseAddrPort(backend)
	if err != nil {
		return err
	}
	l, err := sharedListen.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(relayReady)
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			u, err := dialEndpoint(to, true)
			if err != nil {
				c.Close()
				return
			}
			sizeLocal(c.(*net.TCPConn))
			sizeLocal(u)
			// File returns blocking duplicates of the sockets.
			cf, _ := c.(*net.TCPConn).File()
			uf, _ := u.File()
			c.Close()
			u.Close()
			done := make(chan struct{})
			go func() { blockingSplice(uf, cf); close(done) }()
			blockingSplice(cf, uf)
			<-done
			cf.Close()
			uf.Close()
		}()
	}
}

// rawSplice is a blocking splice the Go scheduler does not see (as in a C
// program): each thread holds a P while it waits, so refRelay raises GOMAXPROCS.
func rawSplice(rfd, wfd, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(rfd), 0, uintptr(wfd), 0, uintptr(n), unix.SPLICE_F_MOVE)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func blockingSplice(dst, src *os.File) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	size, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		size = 64 << 10
	}
	defer unix.Shutdown(int(dst.Fd()), unix.SHUT_WR)
	for {
		k, err := rawSplice(int(src.Fd()), p[1], size)
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			return
		}
		for k > 0 {
			w, err := rawSplice(p[0], int(dst.Fd()), k)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			k -= w
		}
	}
}
