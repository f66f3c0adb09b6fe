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

// ConnectLatency times n blocking TCP connects to addr, each on a new socket that
// is reset right away (SO_LINGER 0) so no TIME_WAIT or conntrack entries pile up.
// The caller should run with GODEBUG=asyncpreemptoff=1: the runtime's preemption
// signal otherwise interrupts connect() now and then.
func ConnectLatency(addr netip.AddrPort, n int) ([]time.Duration, error) {
	for i := 0; i < connectWarmup; i++ {
		if _, err := connectOnce(addr); err != nil {
			return nil, fmt.Errorf("connect %s: %w", addr, err)
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		d, err := connectOnce(addr)
		if err != nil {
			return nil, fmt.Errorf("connect %s (attempt %d): %w", addr, i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func connectOnce(addr netip.AddrPort) (time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(connectTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return 0, err
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return 0, err
	}
	sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	start := time.Now()
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	return d, nil
}
