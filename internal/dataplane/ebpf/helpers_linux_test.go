//go:build linux

package ebpf

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"

	"golang.org/x/sys/unix"
)

var envCounter atomic.Int64

// kenv is one kernel test: a private bpffs for the pins and a child cgroup the
// programs attach to. Only the test's own client code runs in that cgroup.
type kenv struct {
	t      testing.TB
	pinDir string
	cgroup string
	leave  string // cgroup.procs of the cgroup the test process came from
}

func newKenv(t testing.TB) *kenv {
	t.Helper()
	netns.RequireRoot(t)
	bpffs := t.TempDir()
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", bpffs, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(bpffs, unix.MNT_DETACH) })
	root, err := FindCgroup2()
	if err != nil {
		t.Fatal(err)
	}
	cg := filepath.Join(root, fmt.Sprintf("kproxy-ebpf-test-%d-%d", os.Getpid(), envCounter.Add(1)))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create child cgroup: %v", err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: still busy", cg)
	})
	for _, a := range []string{"127.96.0.10:40080", "127.96.0.10:40053", "127.96.0.11:40080"} {
		startNamed(t, a, "decoy")
	}
	return &kenv{t: t, pinDir: filepath.Join(bpffs, "kproxy"), cgroup: cg, leave: filepath.Join(root, ownCgroup(t), "cgroup.procs")}
}

// ownCgroup is this process's cgroup v2 path relative to the mount.
func ownCgroup(t testing.TB) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			return rest
		}
	}
	return "/"
}

func (e *kenv) proxier(t testing.TB) *Proxier {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if _, bench := t.(*testing.B); !bench {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	p, err := NewProxier(Config{PinDir: e.pinDir, Cgroup: e.cgroup, DestroySockets: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// inCgroup runs fn with the whole test process in the child cgroup, so its
// connect()s and sendmsg()s go through the programs.
// testWriter sends the Proxier's log to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (e *kenv) inCgroup(fn func()) {
	e.t.Helper()
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(e.cgroup, "cgroup.procs"), pid, 0o644); err != nil {
		e.t.Fatalf("join cgroup: %v", err)
	}
	defer func() {
		if err := os.WriteFile(e.leave, pid, 0o644); err != nil {
			e.t.Fatalf("leave cgroup: %v", err)
		}
	}()
	fn()
}

// backend is a TCP and UDP server on a loopback address: TCP connections get its
// name and then an echo of every line; UDP datagrams get its name.
type backend struct {
	name string
	ap   netip.AddrPort
	ln   net.Listener
	pc   net.PacketConn
}

func startBackend(t testing.TB, ip string) *backend {
	t.Helper()
	return startNamed(t, ip+":0", ip)
}

func startNamed(t testing.TB, addr, name string) *backend { return startFamily(t, "4", addr, name) }

func startNamed6(t testing.TB, addr, name string) *backend { return startFamily(t, "6", addr, name) }

func startFamily(t testing.TB, fam, addr, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp"+fam, addr)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	pc, err := net.ListenPacket("udp"+fam, ap.String())
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ap: ap, ln: ln, pc: pc}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go b.serveTCP()
	go b.serveUDP()
	return b
}

func (b *backend) serveTCP() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\n", b.name)
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				fmt.Fprintf(c, "%s %s\n", b.name, sc.Text())
			}
		}()
	}
}

func (b *backend) serveUDP() {
	buf := make([]byte, 512)
	for {
		_, from, err := b.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = b.pc.WriteTo([]byte(b.name), from)
	}
}

// snapshot builds a snapshot of ClusterIP Services; eps maps "ns/name" to the
// backends of its only port.
type svcSpec struct {
	name  string
	vip   string
	port  int32
	proto v1.Protocol
	eps   []netip.AddrPort
	sched string
	aff   time.Duration
}

func snapshotOf(specs ...svcSpec) *state.Snapshot {
	s := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{}}
	for _, sp := range specs {
		addService(s, sp)
	}
	return s
}

func addService(s *state.Snapshot, sp svcSpec) state.ServicePortName {
	if sp.proto == "" {
		sp.proto = v1.ProtocolTCP
	}
	ns, name, _ := strings.Cut(sp.name, "/")
	n := state.ServicePortName{Namespace: ns, Name: name, Port: "p", Protocol: sp.proto}
	s.ServiceMap[n] = &state.ServicePort{Name: n, Type: v1.ServiceTypeClusterIP, Protocol: sp.proto,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(sp.vip)}, Port: sp.port,
		Scheduler: sp.sched, AffinityTimeout: sp.aff}
	var eps []state.Endpoint
	for _, ap := range sp.eps {
		eps = append(eps, state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true, Weight: 1})
	}
	s.EndpointMap[n] = eps
	return n
}

func addrs(bs ...*backend) []netip.AddrPort {
	var out []netip.AddrPort
	for _, b := range bs {
		out = append(out, b.ap)
	}
	return out
}

// mustSync applies snap as the core would on a first sync: a full request.
func mustSync(t testing.TB, p *Proxier, snap *state.Snapshot) {
	t.Helper()
	if _, err := p.Apply(context.Background(), dataplane.NewRequest(snap)); err != nil {
		t.Fatal(err)
	}
}

// applyChanged applies snap as a partial request for the ports in cs.
func applyChanged(p *Proxier, snap *state.Snapshot, cs state.ChangeSet) (dataplane.Applied, error) {
	req := dataplane.NewRequest(snap)
	req.Full, req.Changed = false, cs.Ports
	return p.Apply(context.Background(), req)
}

// dialName connects over TCP and returns the first line (the backend's name).
func dialName(addr string) (string, net.Conn, error) {
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return "", nil, err
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return "", nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return strings.TrimSpace(line), c, nil
}

// tcpSpread connects n times and counts backends by name.
func tcpSpread(t testing.TB, addr string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	var mu sync.Mutex
	for range n {
		name, c, err := dialName(addr)
		if err != nil {
			t.Fatalf("connect %s: %v", addr, err)
		}
		c.Close()
		mu.Lock()
		got[name]++
		mu.Unlock()
	}
	return got
}
