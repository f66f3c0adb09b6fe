package userspace

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// startEcho is an endpoint that sends back everything it receives, then closes
// its side when the client has closed its own.
func startEcho(t *testing.T) netip.AddrPort {
	t.Helper()
	return serveTCP(t, func(c *net.TCPConn) {
		defer c.Close()
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// TestRelayCarriesBytesIntact sends 6 MiB of random bytes through the relay to an
// echo endpoint and back, then half-closes: every byte must come back in order
// and the end must pass both ways.
func TestRelayCarriesBytesIntact(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	echoIntact(t, p)
}

// echoIntact is TestRelayCarriesBytesIntact through p.
func echoIntact(t *testing.T, p *Proxier) {
	t.Helper()
	ip := randLoopback()
	s := newSvc("echo", v1.ProtocolTCP, ip, freePort(t, "tcp", ip), testBackend{addr: startEcho(t)})
	sn := snap(state.NodeInfo{}, s)
	mustSync(t, p, sn, allChanged(sn))
	c, err := net.DialTimeout("tcp", s.addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	want := make([]byte, 6<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(r.Uint32())
	}
	go func() {
		// Uneven writes, so that splices see partial pipes.
		for off := 0; off < len(want); {
			n := min(len(want)-off, 1+r.IntN(300<<10))
			if _, err := c.Write(want[off : off+n]); err != nil {
				return
			}
			off += n
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v (after %d bytes)", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo through the relay differs: got %d bytes, want %d", len(got), len(want))
	}
}
