//go:build linux

package bench

import (
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// connectTimeout bounds one connect: a dataplane that drops SYNs must not stall
// the benchmark for the kernel's two-minute retry budget.
const connectTimeout = 2 * time.Second

// connectWarmup connections are made and discarded before timing, so ARP,
// neighbour entries and first-use costs do not land in the samples.
const connectWarmup = 20

// Samples are the timings of n new connections to one Service.
type Samples struct {
	// Connect is how long connect() blocked: the handshake with whoever answers
	// first (the backend through NAT or IPVS; the relay itself in userspace mode).
	Connect []time.Duration
	// RoundTrip runs until the backend's greeting byte arrived: the whole path to
	// a real backend in every mode.
	RoundTrip []time.Duration
}

// ConnectLatency makes n blocking TCP connections to addr, each on a new socket
// that reads the backend's one-byte greeting and is then reset (SO_LINGER 0), so
// no TIME_WAIT entries pile up. The caller should run with
// GODEBUG=asyncpreemptoff=1: the runtime's preemption signal otherwise interrupts
// connect() now and then.
func ConnectLatency(addr netip.AddrPort, n int) (Samples, error) {
	for i := 0; i < connectWarmup; i++ {
		if _, _, err := connectOnce(addr); err != nil {
			return Samples{}, fmt.Errorf("connect %s: %w", addr, err)
		}
	}
	s := Samples{Connect: make([]time.Duration, 0, n), RoundTrip: make([]time.Duration, 0, n)}
	for i := 0; i < n; i++ {
		c, rt, err := connectOnce(addr)
		if err != nil {
			return Samples{}, fmt.Errorf("connect %s (attempt %d): %w", addr, i+1, err)
		}
		s.Connect = append(s.Connect, c)
		s.RoundTrip = append(s.RoundTrip, rt)
	}
	return s, nil
}

func connectOnce(addr netip.AddrPort) (connect, roundTrip time.Duration, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(connectTimeout.Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return 0, 0, err
		}
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return 0, 0, err
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	start := time.Now()
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	connect = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	var buf [1]byte
	for {
		var n int
		n, err = unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err == nil && n != 1 {
			err = fmt.Errorf("connection closed before the backend's greeting")
		}
		break
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read greeting: %w", err)
	}
	return connect, time.Since(start), nil
}
