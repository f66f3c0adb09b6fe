//go:build linux

package userspace

import (
	"bufio"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// TestRelayCopiesWhenNoPipeCanBeMade runs TestRelayCarriesBytesIntact with a
// relay that cannot make a pipe (as when the process is out of descriptors): the
// bytes must still pass, intact, copied through a buffer, where the relay used
// to close the connection.
func TestRelayCopiesWhenNoPipeCanBeMade(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	var tries atomic.Int64
	p.pipes = &pipePool{pipe2: func([]int, int) error {
		tries.Add(1)
		return unix.EMFILE
	}}
	echoIntact(t, p)
	if tries.Load() == 0 {
		t.Fatal("the relay never asked for a pipe: the fallback was not exercised")
	}
	if n := p.pipes.inUse.Load(); n != 0 {
		t.Fatalf("%d pipes counted in use, none could be made", n)
	}
}

// TestRelayFixesBuffersTowardLocalPeers checks the sockets of a connection from a
// loopback client to an endpoint on this node: both have the fixed receive
// buffer (the kernel reports twice the value set), not the kernel's autotuned
// one, which let megabytes queue at the relay; their send buffers are left to
// autotuning (localSendBuffer 0).
func TestRelayFixesBuffersTowardLocalPeers(t *testing.T) {
	t.Parallel()
	backend := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("buffers", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), backend)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c, err := net.DialTimeout("tcp", s.addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "A\n" {
		t.Fatalf("endpoint answered %q, %v", line, err)
	}
	socks := relaySockets(p)
	if len(socks) != 2 {
		t.Fatalf("the relay holds %d sockets, want the client's and the endpoint's", len(socks))
	}
	for _, sock := range socks {
		var rcv int
		onFD(t, sock, func(fd int) (err error) {
			rcv, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
			return err
		})
		if rcv != 2*localReceiveBuffer {
			t.Errorf("relay socket %v -> %v: SO_RCVBUF %d, want %d", sock.LocalAddr(), sock.RemoteAddr(), rcv, 2*localReceiveBuffer)
		}
	}
}

// relaySockets are the sockets the relay holds open: its clients' and its
// endpoints'.
func relaySockets(p *Proxier) []*net.TCPConn {
	var socks []*net.TCPConn
	p.conns.mu.Lock()
	defer p.conns.mu.Unlock()
	for k := range p.conns.m {
		socks = append(socks, k.(*net.TCPConn))
	}
	return socks
}

// onFD runs f on c's descriptor and fails t on any error.
func onFD(t *testing.T, c *net.TCPConn, f func(fd int) error) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
}
