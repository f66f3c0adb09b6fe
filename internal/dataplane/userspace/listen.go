package userspace

import (
	"context"
	"net"
	"net/netip"
	"syscall"
)

// The listeners are opened with SO_REUSEPORT (where the OS has it) so that a
// restarted kproxy binds the same Service addresses while the old process still
// drains: the handoff. The kernel spreads new connections over both until the
// old one closes its listeners; with net.ipv4.tcp_migrate_req (set by Drain, see
// listen_linux.go) the connections still in the old accept queue then move to
// the successor instead of being reset. See README.md ("Restarts").

// IPv6 listeners are also free-binding: an IPv6 Service address kproxy made
// local with a local route (addrs_linux.go) is not an interface address, and
// without it bind fails. Every listener's address is local by then (loopback,
// the host's, or routed), so it changes nothing else.
//
// TCP listeners choose the congestion control for local peers
// (congestion_linux.go): their accepted sockets inherit it, and serveTCP gives
// remote clients the default back.
var sharedListen = net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
	if err := chooseLocalCongestion(network, c); err != nil {
		return err
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		if serr = setReusePort(fd); serr == nil && (network == "tcp6" || network == "udp6") {
			serr = setFreebind6(fd)
		}
	}); err != nil {
		return err
	}
	return serr
}}

func listenTCPShared(a netip.AddrPort) (*net.TCPListener, error) {
	ln, err := sharedListen.Listen(context.Background(), "tcp", a.String())
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func listenUDPShared(a netip.AddrPort) (*net.UDPConn, error) {
	pc, err := sharedListen.ListenPacket(context.Background(), "udp", a.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
