//go:build linux

package netns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var envCounter atomic.Int64

// Delete removes namespace name (`ip netns del`). It retries for up to two
// seconds while the namespace's file stays, then returns the error: a failure
// must be seen, not ignored (the nftables tests' own helper ignored it, and
// their namespaces were twice found left behind after test runs; the cause was
// not established).
func Delete(name string) error {
	var out []byte
	var err error
	for i := 0; i < 20; i++ {
		if out, err = exec.Command("ip", "netns", "del", name).CombinedOutput(); err == nil {
			return nil
		}
		if _, serr := os.Stat("/run/netns/" + name); os.IsNotExist(serr) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("ip netns del %s: %v: %s", name, err, out)
}

// Env is one test topology: a node namespace and the namespaces linked to it.
type Env struct {
	t      testing.TB
	prefix string
	// Node is the namespace the proxy runs in.
	Node  *NS
	links int
}

// New creates the node namespace (loopback up, IPv4 forwarding on) and registers its
// removal. It fails the test when not root or when `ip` is missing; callers that want
// to skip on non-root should check RequireRoot first.
func New(t testing.TB, prefix string) *Env {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("netns: the ip command (iproute2) is required: %v", err)
	}
	id := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%100000, envCounter.Add(1))
	e := &Env{t: t, prefix: id}
	e.Node = e.newNS("node")
	e.Node.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// Clients and the default route share one link, so forwarded packets would
	// trigger ICMP redirects, whose rate limit then swallows the port-unreachable
	// a REJECT sends: a refused connection would look like a timeout.
	e.Node.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
	return e
}

// RequireRoot skips the test when not running as root: kernel tests need it, and CI
// runs them as root so they are never skipped there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns: kernel test needs root")
	}
}

// Prefix is the unique prefix of every namespace in this Env.
func (e *Env) Prefix() string { return e.prefix }

func (e *Env) newNS(suffix string) *NS {
	e.t.Helper()
	name := e.prefix + "-" + suffix
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		e.t.Fatalf("netns: ip netns add %s: %v: %s", name, err, out)
	}
	e.t.Cleanup(func() {
		if err := Delete(name); err != nil {
			e.t.Errorf("netns: %v", err)
		}
	})
	ns := &NS{Name: name}
	ns.MustRun(e.t, "ip", "link", "set", "lo", "up")
	return ns
}

// AddBackend creates a "pod" namespace with address 10.244.K.2/24 whose node-side
// gateway is 10.244.K.1, K counting links from 1. Pod addresses are inside
// 10.244.0.0/16, the cluster CIDR tests should configure.
func (e *Env) AddBackend(name string) *NS {
	e.t.Helper()
	return e.addLinked(name, "10.244")
}

// AddClient creates an "off-cluster" client namespace at 192.168.K.2/24; the node's
// side of the link, 192.168.K.1, is a node address clients can use for NodePorts.
func (e *Env) AddClient(name string) *NS {
	e.t.Helper()
	return e.addLinked(name, "192.168")
}

func (e *Env) addLinked(name, net16 string) *NS {
	e.t.Helper()
	e.links++
	if e.links > 250 {
		e.t.Fatalf("netns: too many namespaces in one Env")
	}
	ns := e.newNS(name)
	ns.IP = netip.MustParseAddr(fmt.Sprintf("%s.%d.2", net16, e.links))
	ns.NodeIP = netip.MustParseAddr(fmt.Sprintf("%s.%d.1", net16, e.links))
	link := fmt.Sprintf("veth%d", e.links)
	e.Node.MustRun(e.t, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns.Name)
	e.Node.MustRun(e.t, "ip", "addr", "add", ns.NodeIP.String()+"/24", "dev", link)
	e.Node.MustRun(e.t, "ip", "link", "set", link, "up")
	ns.MustRun(e.t, "ip", "addr", "add", ns.IP.String()+"/24", "dev", "eth0")
	ns.MustRun(e.t, "ip", "link", "set", "eth0", "up")
	ns.MustRun(e.t, "ip", "route", "add", "default", "via", ns.NodeIP.String())
	ns.NodeLink = link
	return ns
}

// NS is one network namespace.
type NS struct {
	Name string
	// IP is the namespace's own address (unset for the node).
	IP netip.Addr
	// NodeIP is the node's address on the link to this namespace.
	NodeIP netip.Addr
	// NodeLink is the node-side veth name.
	NodeLink string
}

// Command returns a command that runs inside the namespace via `ip netns exec`.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	out, err := ns.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AddIPv6 gives the link between the node and ns the addresses fd00:<net16>:<k>::1
// (node side) and ::2 (ns side), with ns routing IPv6 through the node, and returns
// ns's address. The links are IPv4 only otherwise. nodad: duplicate address
// detection would keep the addresses unusable for a second.
func (e *Env) AddIPv6(t testing.TB, ns *NS, net16 string, k int) netip.Addr {
	t.Helper()
	nodeIP := fmt.Sprintf("fd00:%s:%d::1", net16, k)
	ip := netip.MustParseAddr(fmt.Sprintf("fd00:%s:%d::2", net16, k))
	e.Node.MustRun(t, "ip", "-6", "addr", "add", nodeIP+"/64", "dev", ns.NodeLink, "nodad")
	ns.MustRun(t, "ip", "-6", "addr", "add", ip.String()+"/64", "dev", "eth0", "nodad")
	ns.MustRun(t, "ip", "-6", "route", "add", "default", "via", nodeIP)
	return ip
}
