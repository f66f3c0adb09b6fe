//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// ebpfNode is what the ebpf mode needs to run away from the host's cgroup root: a
// child cgroup v2 (on a private cgroup2 mount, which `ip netns exec`'s remount of
// /sys does not hide) and a private bpffs for the pins.
type ebpfNode struct {
	cgroup string
	bpffs  string
	pinDir string
	// home is the cgroup.procs file of the test process's own cgroup, on the
	// private mount, for inCgroup to go back to.
	home string
	mu   sync.Mutex
}

func newEBPFNode(t *testing.T) *ebpfNode {
	t.Helper()
	cgmnt, bpffs := t.TempDir(), t.TempDir()
	if err := unix.Mount("cgroup2", cgmnt, "cgroup2", 0, ""); err != nil {
		t.Fatalf("mount cgroup2 on %s: %v", cgmnt, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(cgmnt, unix.MNT_DETACH) })
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs on %s: %v", bpffs, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(bpffs, unix.MNT_DETACH) })
	cg := filepath.Join(cgmnt, fmt.Sprintf("kproxy-ebpfmode-e2e-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatalf("create child cgroup: %v", err)
	}
	t.Cleanup(func() {
		for range 100 {
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: still busy", cg)
	})
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	home := ""
	for _, l := range strings.Split(string(self), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			home = filepath.Join(cgmnt, p, "cgroup.procs")
		}
	}
	if home == "" {
		t.Fatalf("no cgroup v2 line in /proc/self/cgroup:\n%s", self)
	}
	return &ebpfNode{cgroup: cg, bpffs: bpffs, pinDir: filepath.Join(bpffs, "kproxy"), home: home}
}

// mode is the ebpf mode attached to this node's cgroup and pinned on its bpffs.
func (e *ebpfNode) mode() mode {
	nft := nftablesMode()
	return mode{Name: "ebpf", ProxyMode: "ebpf", ebpf: e, Dump: nft.Dump,
		Env: []string{"KPROXY_EBPF_CGROUP=" + e.cgroup, "KPROXY_EBPF_PIN_DIR=" + e.pinDir}}
}

// inCgroup runs f with the test process in the attach cgroup, then moves it back:
// the sockets f creates are load-balanced by the programs, as a pod's or the
// node's are in a cluster whose cgroup root carries them (an outside host's are
// not). Callers are sequential; the mutex only keeps two from interleaving.
func (e *ebpfNode) inCgroup(f func() error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(e.cgroup, "cgroup.procs"), pid, 0o644); err != nil {
		return fmt.Errorf("join the attach cgroup: %w", err)
	}
	defer func() {
		if err := os.WriteFile(e.home, pid, 0o644); err != nil {
			panic(fmt.Sprintf("leave the attach cgroup for %s: %v", e.home, err))
		}
	}()
	return f()
}

// noDNATedFlows fails t when the node's conntrack table holds a flow to vip (from
// src, when given) that was DNATed to an endpoint's port: a connection socket LB
// translated in connect() never carried the Service address, while the nftables
// rules leave such entries. Attempts made before the first sync may have left
// un-NATed entries; those do not count.
func noDNATedFlows(t *testing.T, node *netns.NS, src, vip string, endpointPort int) {
	t.Helper()
	fam := "ipv4"
	if strings.Contains(vip, ":") {
		fam = "ipv6"
	}
	args := []string{"-L", "-f", fam, "-d", vip}
	if src != "" {
		args = append(args, "-s", src)
	}
	out, _ := node.Run("conntrack", args...)
	if strings.Contains(out, fmt.Sprintf("sport=%d ", endpointPort)) {
		t.Errorf("flows to the Service address %s were DNATed, not socket-LB'd:\n%s", vip, out)
	}
}

// cgroupClient is a client namespace whose sockets are created in the attach
// cgroup (a conformance.Asker and SourceAsker).
type cgroupClient struct {
	e  *ebpfNode
	ns *netns.NS
}

func (c cgroupClient) AskTCP(addr string, timeout time.Duration) (name string, err error) {
	err = c.e.inCgroup(func() error { name, err = c.ns.AskTCP(addr, timeout); return err })
	return name, err
}

func (c cgroupClient) AskUDP(addr string, timeout time.Duration) (name string, err error) {
	err = c.e.inCgroup(func() error { name, err = c.ns.AskUDP(addr, timeout); return err })
	return name, err
}

func (c cgroupClient) AskTCPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	err = c.e.inCgroup(func() error { name, src, err = c.ns.AskTCPSource(network, addr, timeout); return err })
	return name, src, err
}

func (c cgroupClient) AskUDPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	err = c.e.inCgroup(func() error { name, src, err = c.ns.AskUDPSource(network, addr, timeout); return err })
	return name, src, err
}

// ask connects from a process in the child cgroup, inside the node namespace, to
// addr and returns the first line the server sent, or the shell's error.
func (e *ebpfNode) ask(node *netns.NS, addr string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	cg, err := os.Open(e.cgroup)
	if err != nil {
		return "", err
	}
	defer cg.Close()
	cmd := exec.Command("ip", "netns", "exec", node.Name, "timeout", "3", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && head -n1 <&3", host, port))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// pins lists what is on the private bpffs besides what it had at the start (the
// kernel's own maps.debug and progs.debug).
func (e *ebpfNode) pins(t *testing.T, before map[string]bool) []string {
	var left []string
	filepath.WalkDir(e.bpffs, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != e.bpffs && !before[p] {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// The real daemon in --proxy-mode ebpf: its start removes what kube-proxy left (its
// nftables tables, which would shadow the nftables mode's table the ebpf mode uses
// for north-south traffic, and its iptables rules, in both backends), a client in
// the attach cgroup reaches every endpoint of a ClusterIP by socket LB, a Service
// without endpoints is refused, starting the nftables mode unpins the ebpf mode,
// and --cleanup leaves no pin.
func TestEBPFModeDaemon(t *testing.T) {
	netns.RequireRoot(t)
	e := newEBPFNode(t)
	c := newCluster(t, e.mode(), 3)
	c.apply("web", service{Name: "web", ClusterIP: "10.96.0.10", Port: 80, Endpoints: c.backends}.manifest())
	c.apply("empty", service{Name: "empty", ClusterIP: "10.96.0.12", Port: 80, Endpoints: []*netns.NS{}}.manifest())
	kubeProxyTables := "table ip kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n" +
		"table ip6 kube-proxy {\n chain filter-input { type filter hook input priority -110; policy accept; }\n}\n"
	runOnFile(t, c.env.Node, kubeProxyTables, "nft", "-f")
	rules, _, _ := kubeProxyRuleset(c.backends)
	loadKubeProxyRules(t, c.env.Node, "nft", rules)
	loadKubeProxyRules(t, c.env.Node, "legacy", rules)
	before := map[string]bool{}
	for _, p := range e.pins(t, nil) {
		before[p] = true
	}
	c.start()

	want := c.names(c.backends...)
	c.askWithUntilAll("10.96.0.10:80 in the cgroup", want, func() (string, error) {
		return e.ask(c.env.Node, "10.96.0.10:80")
	})
	// The cleanup runs before the first sync, so it is done once traffic flows.
	if out := c.env.Node.MustRun(t, "nft", "list", "tables"); strings.Contains(out, "kube-proxy") {
		t.Errorf("kube-proxy's nftables tables left after kproxy started in ebpf mode:\n%s", out)
	}
	if left := iptablesMode("nft").Leftovers(t, c.env.Node); left != "" {
		t.Errorf("kube-proxy's iptables rules left after kproxy started in ebpf mode:\n%s", left)
	}
	if _, err := e.ask(c.env.Node, "10.96.0.12:80"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Service without endpoints: %v, want connection refused", err)
	}
	if len(e.pins(t, before)) == 0 {
		t.Fatal("no pins while the ebpf mode runs: the cleanup check would prove nothing")
	}
	c.stop()
	if len(e.pins(t, before)) == 0 {
		t.Fatal("no pins after the ebpf mode stopped: restarts would have a gap")
	}

	// Starting the nftables mode detaches and unpins the ebpf mode, whose socket LB
	// would bypass its rules.
	c.m.ProxyMode = "nftables"
	c.start()
	c.eventually("ebpf pins removed by the nftables mode's start", func() error {
		if left := e.pins(t, before); len(left) != 0 {
			return fmt.Errorf("still pinned: %v", left)
		}
		return nil
	})
	c.stop()

	c.m.ProxyMode = "ebpf"
	c.start()
	c.eventually("ebpf mode serving again", func() error {
		got, err := e.ask(c.env.Node, "10.96.0.10:80")
		if err == nil && !want[got] {
			err = fmt.Errorf("unexpected answer %q", got)
		}
		return err
	})
	c.stop()
	c.runKproxy("--cleanup")
	if left := e.pins(t, before); len(left) != 0 {
		t.Fatalf("left on bpffs after --cleanup: %v", left)
	}
}
