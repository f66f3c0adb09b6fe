package userspace

import (
	"net"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Congestion control of the relay's sockets towards peers on this node.
//
// BBR paces: it spaces a socket's segments at its estimate of the path's rate,
// and without the fq qdisc (loopback and veth have none) the TCP stack does it
// itself with a high-resolution timer per socket, sending what the timer held
// back from softirq context. Towards a peer on this node there is no path to
// pace for, only a relay that hands bytes on: on a node whose default is BBR,
// most of the relay's sends to a loopback client were held back by the pacing
// timer, the client was woken in small bursts, and a larger send buffer only made
// the relay wait longer (docs/performance.md, "BBR's pacing on the relay's local
// legs"). So, where the network namespace's default congestion control paces,
// the relay's sockets to local peers use one that does not: cubic, or reno where
// an unprivileged process may not choose cubic (net.ipv4.
// tcp_allowed_congestion_control; reno is always allowed). It is chosen before
// the handshake, as BBR's pacing, once on, stays on after a switch: endpoint
// sockets at connect(), client sockets through their listener, and an accepted
// connection from a remote client gets the default back before the relay sends
// it anything. Where the default does not pace (cubic, the kernel's default),
// nothing changes.

// congestion is the network namespace's default congestion control (def) and
// the one for relay sockets whose peer is on this node (local; "" when the
// default does not pace, or no other could be set).
type congestion struct {
	def, local string
}

// nodeCongestion probes once per process: kproxy runs in one network namespace.
var nodeCongestion = sync.OnceValue(probeCongestion)

// congestionChoice is the namespace's default congestion control and the one the
// relay uses towards local peers instead ("" for the default), for the log.
func congestionChoice() (def, local string) {
	cg := nodeCongestion()
	return cg.def, cg.local
}

func probeCongestion() congestion {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return congestion{}
	}
	defer unix.Close(fd)
	def, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	if err != nil {
		return congestion{}
	}
	return congestion{def: def, local: localCongestion(def, func(cc string) error { return setCongestion(uintptr(fd), cc) })}
}

// localCongestion is the congestion control for sockets to local peers given
// the default, "" for the default: the first of cubic and reno that try (which
// sets it on a probe socket) accepts, when the default paces.
func localCongestion(def string, try func(string) error) string {
	if !paces(def) {
		return ""
	}
	for _, cc := range []string{"cubic", "reno"} {
		if try(cc) == nil {
			return cc
		}
	}
	return ""
}

// paces reports whether congestion control cc paces every socket (BBR, in all
// its versions).
func paces(cc string) bool { return strings.HasPrefix(cc, "bbr") }

func setCongestion(fd uintptr, cc string) error {
	return unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
}

// chooseLocalCongestion is a socket's Control function (net.Dialer,
// net.ListenConfig) for TCP sockets whose peers are on this node. A failure
// leaves the default: the socket works, only paced.
func chooseLocalCongestion(network string, c syscall.RawConn) error {
	cc := nodeCongestion().local
	if cc == "" || !strings.HasPrefix(network, "tcp") {
		return nil
	}
	return c.Control(func(fd uintptr) { _ = setCongestion(fd, cc) })
}

// restoreDefaultCongestion gives an accepted connection from a remote client
// the namespace's default congestion control (its listener chose the local one).
func restoreDefaultCongestion(c *net.TCPConn) error {
	cg := nodeCongestion()
	if cg.local == "" {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = setCongestion(fd, cg.def) }); err != nil {
		return err
	}
	return serr
}
