//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

func inVM() bool { return os.Getenv("KPROXY_IN_VM") == "1" }

// requireVM skips guest tests outside the VM: TestIPVSInVM runs them inside.
func requireVM(t *testing.T) {
	t.Helper()
	if !inVM() {
		t.Skip("runs inside the IPVS VM (see TestIPVSInVM)")
	}
}

// extraBinaries are further static binaries the guest needs: the kproxy daemon.
func extraBinaries(t *testing.T) map[string]string {
	return map[string]string{kproxyBinary: kproxyBin(t)}
}

var (
	kproxyOnce sync.Once
	kproxyPath string
	kproxyDir  string // removed by TestMain
)

// TestMain removes the kproxy binary's directory when the tests end (41 MB a run).
func TestMain(m *testing.M) {
	code := m.Run()
	if kproxyDir != "" {
		_ = os.RemoveAll(kproxyDir)
	}
	os.Exit(code)
}

// kproxyBin builds the static kproxy binary once per test process.
func kproxyBin(t *testing.T) string {
	t.Helper()
	kproxyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kproxy-ipvs-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		kproxyDir, kproxyPath = dir, filepath.Join(dir, "kproxy")
		cmd := exec.Command("go", "build", "-o", kproxyPath, "kproxy.dev/kproxy/cmd/kproxy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			kproxyPath = ""
			t.Fatalf("building kproxy: %v\n%s", err, out)
		}
	})
	if kproxyPath == "" {
		t.Fatal("kproxy binary did not build")
	}
	return kproxyPath
}

// topology links namespaces to the VM's root namespace, which plays the node: the
// VM is disposable, so the dataplane runs there directly.
type topology struct {
	t *testing.T
}

// linkCount numbers links across tests: a deleted namespace's veth goes away
// asynchronously, so names and subnets are never reused within a boot.
var linkCount atomic.Int32

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// backends adds n backend namespaces PREFIX1..PREFIXn on 10.244.0.0/16, each
// answering TCP on 8080 and, with udp, UDP on 5353.
func (tp *topology) backends(prefix string, n int, udp bool) []*netns.NS {
	tp.t.Helper()
	var out []*netns.NS
	for i := 1; i <= n; i++ {
		b := tp.add(fmt.Sprintf("%s%d", prefix, i), "10.244")
		b.ServeTCP(tp.t, 8080)
		if udp {
			b.ServeUDP(tp.t, 5353)
		}
		out = append(out, b)
	}
	return out
}

// add creates namespace ipvs-NAME at NET16.K.2/24 with gateway NET16.K.1 on the node.
func (tp *topology) add(name, net16 string) *netns.NS {
	t := tp.t
	t.Helper()
	n := linkCount.Add(1)
	ns := &netns.NS{
		Name:   "ipvs-" + name,
		IP:     netip.MustParseAddr(fmt.Sprintf("%s.%d.2", net16, n)),
		NodeIP: netip.MustParseAddr(fmt.Sprintf("%s.%d.1", net16, n)),
	}
	link := fmt.Sprintf("ipvsv%d", n)
	ns.NodeLink = link
	sh(t, "ip", "netns", "add", ns.Name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns.Name).Run()
	})
	sh(t, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	sh(t, "ip", "addr", "add", ns.NodeIP.String()+"/24", "dev", link)
	sh(t, "ip", "link", "set", link, "up")
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	ns.MustRun(t, "ip", "addr", "add", ns.IP.String()+"/24", "dev", "eth0")
	ns.MustRun(t, "ip", "link", "set", "eth0", "up")
	ns.MustRun(t, "ip", "route", "add", "default", "via", ns.NodeIP.String())
	return ns
}

// snapshot builds a Snapshot of ServicePorts with their endpoints.
type snapshot struct {
	s   *state.Snapshot
	gen uint64
}

func newSnapshot() *snapshot {
	return &snapshot{s: &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}}}
}

// put replaces one ServicePort and returns the next snapshot and its change set.
func (b *snapshot) put(sp *state.ServicePort, eps []state.Endpoint) (*state.Snapshot, state.ChangeSet) {
	next := &state.Snapshot{ServiceMap: map[state.ServicePortName]*state.ServicePort{}, EndpointMap: map[state.ServicePortName][]state.Endpoint{}, Node: b.s.Node}
	for k, v := range b.s.ServiceMap {
		next.ServiceMap[k] = v
	}
	for k, v := range b.s.EndpointMap {
		next.EndpointMap[k] = v
	}
	next.ServiceMap[sp.Name] = sp
	next.EndpointMap[sp.Name] = eps
	b.gen++
	next.Generation = b.gen
	b.s = next
	return next, state.ChangeSet{Ports: map[state.ServicePortName]struct{}{sp.Name: {}}}
}

func endpoints(port int32, nss ...*netns.NS) []state.Endpoint {
	var out []state.Endpoint
	for _, ns := range nss {
		out = append(out, state.Endpoint{IP: ns.IP, Port: port, Ready: true, Serving: true, Weight: 1, IsLocal: true})
	}
	return out
}

func service(name, ip string, port int32, proto v1.Protocol) *state.ServicePort {
	return &state.ServicePort{
		Name:     state.ServicePortName{Namespace: "e2e", Name: name, Port: "p", Protocol: proto},
		Type:     v1.ServiceTypeClusterIP,
		Protocol: proto, Port: port,
		ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)},
	}
}

var bg = context.Background()
