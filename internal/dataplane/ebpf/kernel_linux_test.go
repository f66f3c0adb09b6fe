//go:build linux

package ebpf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/trace"
)

// Service addresses are on loopback, with a decoy server on each that answers
// "decoy" to any client the programs do not translate: no test packet leaves the
// host, and a missing translation cannot pass for a refusal.
const vip = "127.96.0.10"

func TestTCPReachesEveryBackend(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3"), startBackend(t, "127.0.0.4")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	mustSync(t, p, snapshotOf(svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs...)}))
	e.inCgroup(func() {
		got := tcpSpread(t, vip+":40080", 90)
		for _, b := range bs {
			if got[b.name] == 0 {
				t.Errorf("backend %s never reached through %s:40080: %v", b.name, vip, got)
			}
		}
		_, c, err := dialName(vip + ":40080")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Go sets RemoteAddr from getpeername(): the program shows the Service.
		if got := c.RemoteAddr().String(); got != vip+":40080" {
			t.Errorf("getpeername = %s, want the Service address %s:40080", got, vip)
		}
	})
	// Outside the cgroup nothing is translated.
	if name, _, err := dialName(vip + ":40080"); err != nil || name != "decoy" {
		t.Errorf("a client outside the cgroup got %q, %v; want the decoy: programs attached too widely", name, err)
	}
}

func TestUDPReachesEveryBackend(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	mustSync(t, p, snapshotOf(svcSpec{name: "kube-system/dns", vip: vip, port: 40053, proto: v1.ProtocolUDP, eps: addrs(bs...)}))
	e.inCgroup(func() {
		connected, unconnected := map[string]int{}, map[string]int{}
		buf := make([]byte, 64)
		for range 60 {
			c, err := net.Dial("udp4", vip+":40053")
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("q")); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(buf)
			c.Close()
			if err != nil {
				t.Fatalf("connected UDP: %v", err)
			}
			connected[string(buf[:n])]++
		}
		pc, err := net.ListenUDP("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		to := &net.UDPAddr{IP: net.ParseIP(vip), Port: 40053}
		for range 60 {
			_ = pc.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := pc.WriteTo([]byte("q"), to); err != nil {
				t.Fatal(err)
			}
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("unconnected UDP: %v", err)
			}
			if from.String() != vip+":40053" {
				t.Fatalf("reply came from %s, want the Service address %s:40053 (recvmsg4)", from, vip)
			}
			unconnected[string(buf[:n])]++
		}
		for _, b := range bs {
			if connected[b.name] == 0 || unconnected[b.name] == 0 {
				t.Errorf("backend %s: connected %v, unconnected %v", b.name, connected, unconnected)
			}
		}
	})
}

func TestNoEndpointsRefusedAtOnce(t *testing.T) {
	e := newKenv(t)
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	mustSync(t, p, snapshotOf(svcSpec{name: "ns/empty", vip: vip, port: 40080},
		svcSpec{name: "ns/empty-udp", vip: vip, port: 40053, proto: v1.ProtocolUDP}))
	e.inCgroup(func() {
		start := time.Now()
		_, err := net.DialTimeout("tcp4", vip+":40080", 2*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to a Service with no endpoints: %v, want ECONNREFUSED", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refused after %v, want at once", d)
		}
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.WriteTo([]byte("q"), &net.UDPAddr{IP: net.ParseIP(vip), Port: 40053})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("sendto a UDP Service with no endpoints: %v, want ECONNREFUSED", err)
		}
	})
}

// holdTo dials the Service until a connection lands on want and returns it.
func holdTo(t *testing.T, addr, want string) (net.Conn, *bufio.Reader) {
	t.Helper()
	for range 200 {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := r.ReadString('\n')
		if err == nil && strings.TrimSpace(line) == want {
			_ = c.SetDeadline(time.Time{})
			return c, r
		}
		c.Close()
	}
	t.Fatalf("no connection to %s landed on %s", addr, want)
	return nil, nil
}

// echo sends a line on a held connection and checks the backend answers.
func echo(c net.Conn, r *bufio.Reader, msg string) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(strings.TrimSpace(line), msg) {
		return fmt.Errorf("echo: got %q", line)
	}
	return nil
}

func TestChangeIsAppliedAndRemovedBackendSocketsDestroyed(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3"), startBackend(t, "127.0.0.4")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	other := svcSpec{name: "ns/other", vip: "127.96.0.11", port: 40080, eps: addrs(bs[2])}
	web := svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs...)}
	mustSync(t, p, snapshotOf(web, other))
	var doomed net.Conn
	var doomedR *bufio.Reader
	e.inCgroup(func() { doomed, doomedR = holdTo(t, vip+":40080", bs[0].name) })
	defer doomed.Close()
	direct, err := net.Dial("tcp4", bs[0].ap.String())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	directR := bufio.NewReader(direct)
	_, _ = directR.ReadString('\n')

	web.eps = addrs(bs[2])
	st, err := applyChanged(p, snapshotOf(web, other), changeOf(web))
	if err != nil {
		t.Fatal(err)
	}
	if st.Full || st.Written["entries"] > 4 {
		t.Errorf("one-Service change: full=%v, wrote %d entries; want an incremental write of at most 4", st.Full, st.Written["entries"])
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 20); len(got) != 1 || got[bs[2].name] != 20 {
			t.Errorf("after the change: %v, want only %s", got, bs[2].name)
		}
		if got := tcpSpread(t, "127.96.0.11:40080", 5); got[bs[2].name] != 5 {
			t.Errorf("the unchanged Service: %v", got)
		}
	})
	p.waitDestroy()
	if err := echo(doomed, doomedR, "still there?"); err == nil {
		t.Error("a connection through the Service to a removed backend survived; want it destroyed")
	}
	if err := echo(direct, directR, "direct"); err != nil {
		t.Errorf("a direct connection to the removed backend (not through a Service) was hit: %v", err)
	}
}

func changeOf(specs ...svcSpec) state.ChangeSet {
	cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{}}
	s := snapshotOf()
	for _, sp := range specs {
		cs.Ports[addService(s, sp)] = struct{}{}
	}
	return cs
}

func TestRestartTakesPinsOverWithoutGap(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
	p1 := e.proxier(t)
	web := svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs[0])}
	mustSync(t, p1, snapshotOf(web))
	var held net.Conn
	var heldR *bufio.Reader
	e.inCgroup(func() { held, heldR = holdTo(t, vip+":40080", bs[0].name) })
	defer held.Close()
	p1.Close() // the process "exits": pins stay

	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 5); got[bs[0].name] != 5 {
			t.Errorf("with no process running: %v, want %s", got, bs[0].name)
		}
	})
	p2 := e.proxier(t)
	t.Cleanup(func() { _ = p2.Cleanup(context.Background()) })
	if n := p2.table.Len(); n != 1 {
		t.Errorf("the new process adopted %d Services from the pinned maps, want 1", n)
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 5); got[bs[0].name] != 5 {
			t.Errorf("after takeover, before the first sync: %v", got)
		}
	})
	web.eps = addrs(bs...)
	mustSync(t, p2, snapshotOf(web))
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 60); len(got) != 2 {
			t.Errorf("after the new process synced: %v, want both backends", got)
		}
	})
	if err := echo(held, heldR, "hello"); err != nil {
		t.Errorf("the connection opened before the restart broke: %v", err)
	}
	if n := attachedPrograms(t, e.cgroup, ebpf.AttachCGroupInet4Connect); n != 1 {
		t.Errorf("%d connect4 programs on the cgroup after the restart, want 1 (link updated in place)", n)
	}
}

func attachedPrograms(t *testing.T, cgroup string, at ebpf.AttachType) int {
	t.Helper()
	f, err := os.Open(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs)
}

func TestCleanupLeavesNothing(t *testing.T) {
	e := newKenv(t)
	b := startBackend(t, "127.0.0.2")
	p := e.proxier(t)
	mustSync(t, p, snapshotOf(svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(b)}))
	var mapIDs []ebpf.MapID
	for _, m := range p.maps.all() {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		mapIDs = append(mapIDs, id)
	}
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		if n := attachedPrograms(t, e.cgroup, h.attach); n != 0 {
			t.Errorf("%s: %d programs still attached after Cleanup", h.name, n)
		}
	}
	if _, err := os.Stat(e.pinDir); !os.IsNotExist(err) {
		t.Errorf("pin directory %s still there after Cleanup: %v", e.pinDir, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range mapIDs {
		for {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				break
			}
			m.Close()
			if time.Now().After(deadline) {
				t.Errorf("map id %d still exists after Cleanup", id)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.inCgroup(func() {
		if name, _, err := dialName(vip + ":40080"); err != nil || name != "decoy" {
			t.Errorf("after Cleanup a client in the cgroup got %q, %v; want the untranslated decoy", name, err)
		}
	})
	if err := p.Cleanup(context.Background()); err != nil {
		t.Errorf("a second Cleanup: %v", err)
	}
}

const helperEnv = "KPROXY_EBPF_TEST_HELPER"

// TestMain lets the test binary run as a helper process (a non-root start).
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		cg, _ := FindCgroup2()
		_, err := NewProxier(Config{PinDir: dir, Cgroup: cg})
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestNonRootStartFailsClearly(t *testing.T) {
	e := newKenv(t)
	exe := worldExecutableCopy(t)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"="+e.pinDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	msg := string(out)
	if !strings.Contains(msg, "ebpf mode") || !strings.Contains(msg, "needs root") {
		t.Errorf("non-root start: %q, want an error naming the ebpf mode and that it needs root (CAP_BPF)", msg)
	}
}

// worldExecutableCopy copies the test binary where another user may run it (go
// test builds it in a directory only root can enter).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "kproxy-ebpf-helper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	exe := filepath.Join(dir, "helper")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestListShowsMapContents(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	mustSync(t, p, snapshotOf(svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs...), sched: "mh", aff: time.Hour}))
	vss, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := listPinned(e.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	for i, list := range [][]dataplane.VirtualService{vss, pinned} {
		if len(list) != 1 {
			t.Fatalf("list %d: %+v", i, list)
		}
		vs := list[0]
		if vs.Address != vip+":40080" || vs.Protocol != "TCP" || vs.Scheduler != "mh" || vs.PersistentSeconds != 3600 || len(vs.RealServers) != 2 {
			t.Errorf("list %d: %+v", i, vs)
		}
		total := 0
		for _, rs := range vs.RealServers {
			total += rs.Weight
		}
		if total != MaglevTableSize {
			t.Errorf("list %d: weights sum to %d, want the %d Maglev slots", i, total, MaglevTableSize)
		}
	}
	if vss[0].Service != "ns/web:p" {
		t.Errorf("daemon list names %q, want ns/web:p", vss[0].Service)
	}
}

func TestAffinityAndMaglevStickToOneBackend(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3"), startBackend(t, "127.0.0.4")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	aff := svcSpec{name: "ns/aff", vip: vip, port: 40080, eps: addrs(bs...), aff: time.Minute}
	mh := svcSpec{name: "ns/mh", vip: "127.96.0.11", port: 40080, eps: addrs(bs...), sched: "mh"}
	mustSync(t, p, snapshotOf(aff, mh))
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 30); len(got) != 1 {
			t.Errorf("ClientIP affinity: one client reached %v, want one backend", got)
		}
		if got := tcpSpread(t, "127.96.0.11:40080", 30); len(got) != 1 {
			t.Errorf("mh: one client network namespace reached %v, want one backend", got)
		}
	})
	// The remembered backend is used while fresh and ignored once expired.
	var key affinityKey
	var val affinityValue
	it := p.maps.affinity.Iterate()
	n := 0
	for it.Next(&key, &val) {
		n++
	}
	if n != 1 {
		t.Fatalf("%d affinity entries, want 1 (one client namespace, one Service)", n)
	}
	var now unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	pinned := newBackend(bs[1].ap)
	val = affinityValue{Addr: pinned.Addr, Port: pinned.Port, TS: uint64(now.Nano())}
	if err := p.maps.affinity.Put(&key, &val); err != nil {
		t.Fatal(err)
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 10); got[bs[1].name] != 10 {
			t.Errorf("fresh affinity entry for %s: got %v", bs[1].name, got)
		}
	})
	dead := newBackend(netip.MustParseAddrPort("127.0.0.9:1"))
	val = affinityValue{Addr: dead.Addr, Port: dead.Port, TS: 1}
	if err := p.maps.affinity.Put(&key, &val); err != nil {
		t.Fatal(err)
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 5); len(got) != 1 {
			t.Errorf("after the entry expired: %v", got)
		}
	})
	// A client stuck to a backend that leaves the Service is placed again.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	val = affinityValue{Addr: pinned.Addr, Port: pinned.Port, TS: uint64(now.Nano())}
	if err := p.maps.affinity.Put(&key, &val); err != nil {
		t.Fatal(err)
	}
	aff.eps = addrs(bs[0], bs[2])
	if _, err := applyChanged(p, snapshotOf(aff, mh), changeOf(aff)); err != nil {
		t.Fatal(err)
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 10); got[bs[1].name] != 0 {
			t.Errorf("after %s left the Service its affinity client still reached it: %v", bs[1].name, got)
		}
	})
}

func TestIPv6TCPAndUDP(t *testing.T) {
	e := newKenv(t)
	// IPv6 loopback has one address: backends differ by port, and the Service
	// address is [::1]:40081, where a decoy answers whatever is not translated.
	startNamed6(t, "[::1]:40081", "decoy")
	bs := []*backend{startNamed6(t, "[::1]:0", "b1"), startNamed6(t, "[::1]:0", "b2")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	svcs := snapshotOf(svcSpec{name: "ns/v6", vip: "::1", port: 40081, eps: addrs(bs...)},
		svcSpec{name: "ns/v6-udp", vip: "::1", port: 40081, proto: v1.ProtocolUDP, eps: addrs(bs...)})
	mustSync(t, p, svcs)
	e.inCgroup(func() {
		got := map[string]int{}
		for range 40 {
			c, err := net.DialTimeout("tcp6", "[::1]:40081", 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if ra := c.RemoteAddr().String(); ra != "[::1]:40081" {
				t.Errorf("getpeername6 = %s, want [::1]:40081", ra)
			}
			c.Close()
			got[strings.TrimSpace(line)]++
		}
		if got["b1"] == 0 || got["b2"] == 0 {
			t.Errorf("TCP over IPv6: %v, want both backends", got)
		}
		pc, err := net.ListenUDP("udp6", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		buf := make([]byte, 64)
		udp := map[string]int{}
		for range 40 {
			_ = pc.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := pc.WriteTo([]byte("q"), &net.UDPAddr{IP: net.IPv6loopback, Port: 40081}); err != nil {
				t.Fatal(err)
			}
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if from.String() != "[::1]:40081" {
				t.Fatalf("UDP reply from %s, want the Service address (recvmsg6)", from)
			}
			udp[string(buf[:n])]++
		}
		if udp["b1"] == 0 || udp["b2"] == 0 {
			t.Errorf("unconnected UDP over IPv6: %v", udp)
		}
	})
}

// TestDestroyReachesSocketsInOtherNamespaces: a client in another network
// namespace (a pod) connected through a Service loses its socket when the backend
// is removed.
func TestDestroyReachesSocketsInOtherNamespaces(t *testing.T) {
	e := newKenv(t)
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	type setup struct {
		bs      []*backend
		conn    net.Conn
		r       *bufio.Reader
		sleeper *exec.Cmd
		err     error
	}
	ch := make(chan setup)
	web := svcSpec{name: "ns/web", vip: vip, port: 40080}
	go func() {
		runtime.LockOSThread()
		var s setup
		defer func() { ch <- s }()
		orig, err := netns.Get()
		if err != nil {
			s.err = err
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			s.err = err
			return
		}
		defer ns.Close()
		defer func() {
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread() // else the thread dies with the goroutine
			}
		}()
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			s.err = err
			return
		}
		s.bs = []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
		web.eps = addrs(s.bs...)
		if _, s.err = applyChanged(p, snapshotOf(web), changeOf(web)); s.err != nil {
			return
		}
		e.inCgroup(func() { s.conn, s.r = holdTo(t, vip+":40080", s.bs[0].name) })
		// A process keeps the namespace visible in /proc, as a pod's pause does.
		s.sleeper = exec.Command("sleep", "60")
		s.err = s.sleeper.Start()
	}()
	s := <-ch
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer func() { _ = s.sleeper.Process.Kill(); _ = s.sleeper.Wait() }()
	defer s.conn.Close()
	web.eps = addrs(s.bs[1])
	if _, err := applyChanged(p, snapshotOf(web), changeOf(web)); err != nil {
		t.Fatal(err)
	}
	p.waitDestroy()
	if err := echo(s.conn, s.r, "still there?"); err == nil {
		t.Error("a pod's connection through the Service to a removed backend survived")
	}
}

// TestUnderTheCore drives the mode through the proxier core, as the daemon does.
func TestUnderTheCore(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
	core := dataplane.NewCore(e.proxier(t), dataplane.CoreOptions{})
	t.Cleanup(func() { _ = core.Cleanup(context.Background()) })
	web := svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs...)}
	if _, err := core.Sync(context.Background(), snapshotOf(web), changeOf(web)); err != nil {
		t.Fatal(err)
	}
	web.eps = addrs(bs[1])
	st, err := core.Sync(context.Background(), snapshotOf(web), changeOf(web))
	if err != nil {
		t.Fatal(err)
	}
	if st.Full {
		t.Error("the second sync through the core was full")
	}
	e.inCgroup(func() {
		if got := tcpSpread(t, vip+":40080", 10); got[bs[1].name] != 10 {
			t.Errorf("through the core: %v", got)
		}
	})
	l, ok := dataplane.As[dataplane.Lister](core)
	if !ok {
		t.Fatal("the core does not expose the mode's Lister")
	}
	if vss, err := l.List(context.Background()); err != nil || len(vss) != 1 || len(vss[0].RealServers) != 1 {
		t.Errorf("list through the core: %+v, %v", vss, err)
	}
}

// `kproxy trace --mode ebpf` reads the pinned maps: the traced candidates are
// exactly the Service's backends, equally likely, and a real connection from the
// cgroup lands on one of them.
func TestTraceAgreesWithConnections(t *testing.T) {
	e := newKenv(t)
	bs := []*backend{startBackend(t, "127.0.0.2"), startBackend(t, "127.0.0.3")}
	p := e.proxier(t)
	t.Cleanup(func() { _ = p.Cleanup(context.Background()) })
	mustSync(t, p, snapshotOf(svcSpec{name: "ns/web", vip: vip, port: 40080, eps: addrs(bs...)}))
	vss, err := listPinned(e.pinDir)
	if err != nil {
		t.Fatal(err)
	}
	r := trace.TraceVirtualServices("ebpf", vss, trace.Packet{Src: netip.MustParseAddr("127.0.0.1"),
		Dst: netip.MustParseAddr(vip), DPort: 40080, Proto: "tcp"}, trace.Options{})
	cands := map[string]float64{}
	for _, c := range r.Candidates {
		cands[c.Endpoint] = c.Probability
	}
	if len(cands) != 2 || cands[bs[0].ap.String()] != 0.5 || cands[bs[1].ap.String()] != 0.5 {
		t.Fatalf("traced candidates %v, want both backends at 0.5", r.Candidates)
	}
	e.inCgroup(func() {
		name, c, err := dialName(vip + ":40080")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if name != bs[0].name && name != bs[1].name {
			t.Errorf("the connection reached %q, not a traced candidate", name)
		}
	})
}
