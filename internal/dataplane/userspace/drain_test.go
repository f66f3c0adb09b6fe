package userspace

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// refused reports nil when a connection from local to addr is refused or reset.
func refused(local netip.Addr, addr netip.AddrPort) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil || n > 0 {
		return fmt.Errorf("connection accepted and answered (%d bytes)", n)
	}
	return nil
}

func TestDrainKeepsAcceptingUntilQuiet(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("drain", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := dialName(t, netip.Addr{}, s.addr())
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background()) }()
	// While a connection is open the drain goes on, and new connections are served.
	for i := 0; i < 20; i++ {
		if got := names(t, netip.Addr{}, s.addr(), 1)[0]; got != "A" {
			t.Fatalf("new connection during drain answered %q, want A", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := held.ask(t); got != "A" {
		t.Fatalf("open connection during drain answered %q, want A", got)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a connection was open", err)
	default:
	}
	held.Close()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
	case <-time.After(drainQuiet + 5*time.Second):
		t.Fatal("Drain did not return after the last connection closed")
	}
	if err := refused(netip.Addr{}, s.addr()); err != nil {
		t.Fatalf("after Drain: %v", err)
	}
	if _, err := coreFor(p).Sync(context.Background(), sn, allChanged(sn)); err == nil {
		t.Fatal("Sync after Drain succeeded; want an error")
	}
}

func TestDrainDeadlineClosesConnections(t *testing.T) {
	t.Parallel()
	a := startTCPBackend(t, "A")
	ip := randLoopback()
	s := newSvc("drain", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), a)
	p, _ := testProxier(t, nil)
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	held := dialName(t, netip.Addr{}, s.addr())
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Drain(ctx); err == nil {
		t.Fatal("Drain with a connection open past the deadline returned nil")
	}
	held.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := held.r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after the drain deadline")
	}
}
