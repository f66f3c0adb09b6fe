//go:build linux

package nftables

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	kernelns "kproxy.dev/kproxy/internal/testing/netns"
)

// Minimal network-namespace helpers for this package's kernel tests. Names carry
// the "nftables-" prefix so parallel engineers never collide.

var nsCounter atomic.Int32

type netns struct {
	name string
	fd   int
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test needs root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("kernel test needs %q installed: %v", tool, err)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a namespace with loopback up, deleted when the test ends.
func newNetns(t testing.TB, role string) *netns {
	t.Helper()
	name := fmt.Sprintf("nftables-%s-%d-%d", role, os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if err := kernelns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	ns := &netns{name: name, fd: fd}
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

func (n *netns) ip(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", n.name}, args...)...)
}

func (n *netns) exec(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

// do runs fn on an OS thread inside the namespace; sockets fn opens stay there.
func (n *netns) do(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			done <- err // leave the thread locked: it dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("netns %s: %v", n.name, err)
	}
}

// link connects two namespaces with a veth pair and gives each end addresses.
func link(t *testing.T, a *netns, aAddrs []string, b *netns, bAddrs []string) {
	t.Helper()
	id := nsCounter.Add(1)
	an, bn := fmt.Sprintf("nftv%da", id), fmt.Sprintf("nftv%db", id)
	a.ip(t, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b.name)
	for _, x := range []struct {
		ns    *netns
		dev   string
		addrs []string
	}{{a, an, aAddrs}, {b, bn, bAddrs}} {
		for _, addr := range x.addrs { // nil addrs: the caller configures the link
			x.ns.ip(t, "addr", "add", addr, "dev", x.dev)
		}
		x.ns.ip(t, "link", "set", x.dev, "up")
	}
}

// serveIdentity listens on addr inside ns and answers every connection with the
// address it was reached on, so a client learns which backend took it.
func serveIdentity(t *testing.T, ns *netns, network, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.do(t, func() { ln, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", c.LocalAddr())
			c.Close()
		}
	}()
}

// dialIdentity connects from ns to addr and returns the backend's answer.
func dialIdentity(t *testing.T, ns *netns, addr string) (string, error) {
	t.Helper()
	var got string
	var derr error
	ns.do(t, func() {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			derr = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			derr = err
			return
		}
		got = strings.TrimSpace(line)
	})
	return got, derr
}
