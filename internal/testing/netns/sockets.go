//go:build linux

package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"
)

// Do runs f on an OS thread switched into the namespace. Sockets created by f stay in
// the namespace after f returns, so they can be used from any goroutine.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := vnetns.GetFromName(ns.Name)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns.Name, err)
			return
		}
		defer target.Close()
		if err := vnetns.Set(target); err != nil {
			errc <- fmt.Errorf("netns %s: setns: %w", ns.Name, err)
			return
		}
		ferr := f()
		if err := vnetns.Set(orig); err != nil {
			// Leave the thread locked: the runtime then discards it rather than
			// reusing a thread stuck in the wrong namespace.
			errc <- fmt.Errorf("netns: restore namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) { l, err = net.Listen(network, addr); return })
	return l, err
}

// ListenPacket opens a packet socket inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := ns.Do(func() (err error) { c, err = net.ListenPacket(network, addr); return })
	return c, err
}

// Dial connects from inside the namespace.
func (ns *NS) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) { c, err = net.DialTimeout(network, addr, timeout); return })
	return c, err
}

// DialFrom connects from inside the namespace with a fixed local address ("ip:port"),
// for tests that need one client identity (affinity, UDP flows).
func (ns *NS) DialFrom(network, local, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout}
		switch network {
		case "udp", "udp4":
			d.LocalAddr, err = net.ResolveUDPAddr(network, local)
		default:
			d.LocalAddr, err = net.ResolveTCPAddr(network, local)
		}
		if err != nil {
			return err
		}
		c, err = d.Dial(network, addr)
		return err
	})
	return c, err
}

// ServeTCP answers every TCP connection on port with the namespace name and a newline,
// then keeps the connection open until the client closes it (so tests can hold an
// established connection). A client line "src?" is answered with the name and the
// client address the server sees (AskTCPSource). The listener closes on t.Cleanup.
func (ns *NS) ServeTCP(t testing.TB, port int) {
	t.Helper()
	ns.ServeTCPReply(t, port, ns.Name)
}

// ServeTCPReply is ServeTCP with a chosen reply.
func (ns *NS) ServeTCPReply(t testing.TB, port int, reply string) {
	t.Helper()
	ns.serveTCP(t, "tcp4", fmt.Sprintf(":%d", port), func(c net.Conn) { go echoName(c, reply) })
}

// ServeTCP6Reply is ServeTCPReply over IPv6.
func (ns *NS) ServeTCP6Reply(t testing.TB, port int, reply string) {
	t.Helper()
	ns.serveTCP(t, "tcp6", fmt.Sprintf("[::]:%d", port), func(c net.Conn) { go echoName(c, reply) })
}

// ServeClientAddr answers every IPv4 TCP connection on port with the client
// address the server sees and a newline, then closes it: tests use it to see
// whether a connection arrived masqueraded. The listener closes on t.Cleanup.
func (ns *NS) ServeClientAddr(t testing.TB, port int) {
	t.Helper()
	ns.serveOneLine(t, "tcp4", fmt.Sprintf(":%d", port), func(c net.Conn) string {
		return c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap().String()
	})
}

// serveOneLine answers every connection on network/addr with line(c) and a
// newline, then closes it.
func (ns *NS) serveOneLine(t testing.TB, network, addr string, line func(c net.Conn) string) {
	t.Helper()
	ns.serveTCP(t, network, addr, func(c net.Conn) {
		fmt.Fprintln(c, line(c))
		c.Close()
	})
}

// serveTCP listens on network/addr in the namespace until the test ends and calls
// handle, in the accept loop, for every connection.
func (ns *NS) serveTCP(t testing.TB, network, addr string, handle func(c net.Conn)) {
	t.Helper()
	l, err := ns.Listen(network, addr)
	if err != nil {
		t.Fatalf("netns: listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
}

// echoName sends reply on connect, and again for every line the client sends;
// the line "src?" gets reply and the client's address (answer).
func echoName(c net.Conn, reply string) {
	defer c.Close()
	if _, err := fmt.Fprintln(c, reply); err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := fmt.Fprintln(c, answer(reply, []byte(line), c.RemoteAddr())); err != nil {
			return
		}
	}
}

// srcQuery asks a server for the client address it sees.
const srcQuery = "src?"

// answer is what a server named name answers to a line or datagram: the name,
// followed by the client's address when asked for it.
func answer(name string, query []byte, from net.Addr) string {
	if strings.TrimSpace(string(query)) != srcQuery {
		return name
	}
	var ip net.IP
	switch a := from.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return name + " " + ip.String()
}

// ServeUDP answers every datagram on port with the namespace name (and the
// client's address when the datagram is "src?", AskUDPSource). It returns a stop
// function (also called on t.Cleanup) so tests can take a backend away.
func (ns *NS) ServeUDP(t testing.TB, port int) (stop func()) {
	t.Helper()
	c, err := ns.ListenPacket("udp4", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatalf("netns: listen udp %d in %s: %v", port, ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo([]byte(answer(ns.Name, buf[:n], from)+"\n"), from)
		}
	}()
	return func() { c.Close() }
}

// AskTCP connects to addr from inside the namespace and returns the first line the
// server sends (without the newline).
func (ns *NS) AskTCP(addr string, timeout time.Duration) (string, error) {
	c, err := ns.Dial("tcp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return ReadLine(c, timeout)
}

// AskUDP sends one datagram to addr from inside the namespace and returns the reply.
func (ns *NS) AskUDP(addr string, timeout time.Duration) (string, error) {
	c, err := ns.Dial("udp4", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return AskConn(c, timeout)
}

// AskTCPSource connects to addr from inside the namespace (network "tcp4" or
// "tcp6") and returns the answering server's name and the client address it saw
// (servers of ServeTCP and ServeTCP6Reply).
func (ns *NS) AskTCPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	c, err := ns.Dial(network, addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return AskTCPSourceConn(c, timeout)
}

// AskTCPSourceConn reads the greeting of a ServeTCP server on an open
// connection, then asks it for the client address it sees (AskTCPSource, for
// connections dialled outside a namespace of this package).
func AskTCPSourceConn(c net.Conn, timeout time.Duration) (name, src string, err error) {
	if _, err := ReadLine(c, timeout); err != nil {
		return "", "", err
	}
	return AskSource(c, timeout)
}

// AskUDPSource sends one datagram to addr from inside the namespace (network
// "udp4" or "udp6") and returns the answering server's name and the client
// address it saw (servers of ServeUDP).
func (ns *NS) AskUDPSource(network, addr string, timeout time.Duration) (name, src string, err error) {
	c, err := ns.Dial(network, addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return AskSource(c, timeout)
}

// AskSource asks the server at the other end of c (ServeUDP, or ServeTCP after
// its greeting) for its name and the client address it sees.
func AskSource(c net.Conn, timeout time.Duration) (name, src string, err error) {
	if _, err := c.Write([]byte(srcQuery + "\n")); err != nil {
		return "", "", err
	}
	line, err := ReadLine(c, timeout)
	if err != nil {
		return "", "", err
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", "", fmt.Errorf("answer %q names no client address", line)
	}
	return line[:i], line[i+1:], nil
}

// AskConn sends one line on an open connection and returns the reply line.
func AskConn(c net.Conn, timeout time.Duration) (string, error) {
	if _, err := c.Write([]byte("?\n")); err != nil {
		return "", err
	}
	return ReadLine(c, timeout)
}

// ReadLine reads one line from c within timeout.
func ReadLine(c net.Conn, timeout time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.SplitN(string(buf[:n]), "\n", 2)[0]), nil
}

// Eventually retries f every 100ms until it returns nil or timeout passes, and
// returns the last error.
func Eventually(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
