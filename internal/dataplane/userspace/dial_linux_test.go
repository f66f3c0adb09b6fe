//go:build linux

package userspace

import (
	"io"
	"net"
	"os"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// TestDialDoesNotBindSourcePort runs, in a namespace of its own, with only 20
// ephemeral ports: 40 connections through the relay, 10 a second, each closed by
// the client first, so that the relay's sockets towards the endpoint end in
// TIME_WAIT. connect() reuses such a port towards the same endpoint after a
// second (tcp_tw_reuse, on for loopback by default); a dial that binds a source
// port first cannot, and failed from about the 10th connection on (the client's
// own TIME_WAIT ports count against bind too).
func TestDialDoesNotBindSourcePort(t *testing.T) {
	if !inOwnNetns(t, "dial", nil) {
		return
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("40000 40019"), 0o644); err != nil {
		t.Fatal(err)
	}
	ip := randLoopback()
	s := newSvc("tw", v1.ProtocolTCP, ip, 8080, testBackend{addr: startEcho(t)})
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	for i := 0; i < 40; i++ {
		if err := clientClosesFirst(s.addr().String()); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientClosesFirst sends a byte, reads the echo, then ends its side first.
func clientClosesFirst(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	if _, err := c.Read(one); err != io.EOF {
		return err
	}
	return nil
}
