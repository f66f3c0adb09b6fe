package userspace

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// localReceiveBuffer fixes the receive buffer of a relay socket whose peer is on
// this node (an endpoint here, a loopback client); peers on other nodes keep the
// kernel's autotuning, which a fixed buffer would cap at buffer/RTT. It keeps
// what a sender can queue at the relay, and so the pages it occupies, few: the
// relay is the slowest of three processes on a stream, so with autotuning its
// receive queue grew to megabytes and the sender, most likely writing into
// fresh, cold pages, spent a third more CPU per MiB
// (docs/performance.md, "Relay CPU per MiB").
//
// localSendBuffer, when positive, fixes the send buffer of such a socket too; 0
// leaves it to the kernel's autotuning, which is best once the relay's sends are
// not paced (congestion_linux.go): a 128 KiB send buffer, best while BBR paced
// them, held a receiving client to 0.66x direct, and autotuning reaches 0.8-1x
// (docs/performance.md, "BBR's pacing on the relay's local legs").
var (
	localSendBuffer    = 0
	localReceiveBuffer = 512 << 10
)

// sizeLocal fixes the buffers of a relay socket whose peer is on this node.
func sizeLocal(c *net.TCPConn) {
	if localSendBuffer > 0 {
		_ = c.SetWriteBuffer(localSendBuffer)
	}
	if localReceiveBuffer > 0 {
		_ = c.SetReadBuffer(localReceiveBuffer)
	}
}

func (p *Proxier) listenTCP(fe *frontend) error {
	ln, err := listenTCPShared(fe.key.addr)
	if err != nil {
		return err
	}
	if err := p.serveListener(fe, ln); err != nil {
		ln.Close()
		return err
	}
	fe.tcp = ln
	return nil
}

// acceptLinger is how long an accept goroutine started by the poller waits for
// the next connection before it ends and the listener goes back to the poller
// (acceptpoll_linux.go): busy listeners keep theirs, idle ones hold none.
const acceptLinger = time.Second

// acceptTCP serves one listener of fe until it is closed or, when the poller
// started it (w not nil), until no connection came for acceptLinger. A frontend
// may get a new listener later (socket.go), served anew.
func (p *Proxier) acceptTCP(fe *frontend, ln *net.TCPListener, w *acceptWatch) {
	defer p.relays.Done()
	backoff := 5 * time.Millisecond
	for {
		if w != nil {
			_ = ln.SetDeadline(time.Now().Add(acceptLinger))
		}
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if w != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				_ = w.arm() // fails only once the listener is closed
				return
			}
			// Out of file descriptors or similar: wait rather than spin.
			p.causes.warn("accept failed", "accept", err, "service", fe.svc.String(), "address", fe.key.addr.String())
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		p.lastAccept.Store(time.Now().UnixNano())
		p.relays.Add(1)
		fe.open.Add(1)
		go p.serveTCP(fe, c)
	}
}

func (p *Proxier) serveTCP(fe *frontend, client *net.TCPConn) {
	defer p.relays.Done()
	defer fe.open.Add(-1)
	p.conns.add(client)
	defer p.conns.remove(client)
	src := client.RemoteAddr().(*net.TCPAddr).AddrPort()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) // one key per client for affinity and sh
	if !fe.allows(src.Addr()) {
		reset(client)
		return
	}
	if !p.admit(src.Addr(), "tcp") {
		reset(client)
		return
	}
	defer p.admission.release(src.Addr())
	upstream, l, none := p.dialTCP(fe, src)
	if upstream == nil {
		p.noEndpoint(fe, client, none)
		return
	}
	p.conns.add(upstream)
	defer p.conns.remove(upstream)
	if l.b.local {
		sizeLocal(upstream)
	}
	if src.Addr().IsLoopback() {
		sizeLocal(client)
	} else if err := restoreDefaultCongestion(client); err != nil {
		p.causes.warn("cannot restore the default congestion control for a remote client", "congestion", err,
			"service", fe.svc.String())
	}
	l.established(true)
	defer l.done()
	if relayTCP(client, upstream, p.limits.idle, &l.b.stats, p.pipes) {
		p.relayMetrics.idleClosed()
	}
}

// admit takes a connection slot for client, or counts and logs the refusal.
func (p *Proxier) admit(client netip.Addr, protocol string) bool {
	r := p.admission.acquire(client)
	if r == admitted {
		return true
	}
	p.relayMetrics.refusedConn(r, protocol)
	p.causes.warn("connection cap reached: refusing new connections", r.String(), errCapReached,
		"reason", r.String(), "protocol", protocol, "client", client.String(),
		"maxConns", p.limits.maxConns, "maxConnsPerClient", p.limits.perClient)
	return false
}

var errCapReached = errors.New("connection cap reached")

// noEndpoint ends a connection that has no endpoint to go to. When the client
// has none (none) while the Service has endpoints elsewhere, the kernel modes
// drop its packets (externalTrafficPolicy or internalTrafficPolicy Local without
// a local endpoint, for a client outside the cluster): the closest an accepting
// socket comes is to close without answering, with a FIN and not a reset.
// Otherwise (no endpoint at all, which a listener sees only in the moment before
// Sync closes it, or every endpoint unreachable) it is refused with a reset, as
// the kernel modes' REJECT.
func (p *Proxier) noEndpoint(fe *frontend, client *net.TCPConn, none bool) {
	if cfg := fe.cfg.Load(); none && cfg != nil && cfg.hasAny {
		client.Close()
		return
	}
	reset(client)
}

// dialTCP connects to an endpoint, trying others when one does not answer, as
// upstream's userspace proxy did. none is true when the client had no endpoint
// to try at all.
func (p *Proxier) dialTCP(fe *frontend, src netip.AddrPort) (_ *net.TCPConn, _ *lease, none bool) {
	for attempt := 0; attempt < 3; attempt++ {
		l, ok := fe.choose(src, time.Now(), &p.classify)
		if !ok {
			return nil, nil, attempt == 0
		}
		c, err := dialEndpoint(l.b.addr, l.b.local)
		if err == nil {
			return c, l, false
		}
		l.failed(src.Addr())
		p.causes.warn("endpoint unreachable", l.b.addr.String(), err, "service", fe.svc.String(), "endpoint", l.b.addr.String())
		if p.stopped.Load() {
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// endpointDialer connects without binding a local address first. Dialer.DialTCP
// with a zero netip.AddrPort as local address does bind (to 0.0.0.0:0), and bind
// picks the source port without knowing the destination: ports that only
// TIME_WAIT connections to other peers hold are refused, so 20,000 quick
// connections failed with "bind: address already in use". connect() alone picks a
// port per destination and may reuse those. localEndpointDialer is the same for
// endpoints on this node, with their congestion control (congestion_linux.go).
var (
	endpointDialer      = net.Dialer{Timeout: dialTimeout}
	localEndpointDialer = net.Dialer{Timeout: dialTimeout, Control: func(network, _ string, c syscall.RawConn) error {
		return chooseLocalCongestion(network, c)
	}}
)

// dialEndpoint connects to endpoint a, local when it is on this node.
func dialEndpoint(a netip.AddrPort, local bool) (*net.TCPConn, error) {
	d := &endpointDialer
	if local {
		d = &localEndpointDialer
	}
	// The context is not cancelable on purpose: deriving from one costs a
	// registration per dial, and a pending dial ends within dialTimeout anyway.
	c, err := d.DialContext(context.Background(), "tcp", a.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// relayTCP copies both ways until both sides have finished, passing half-closes
// on, and reports whether it ended because no byte moved within idle (0: never).
// pp lends splice pipes; without one (no descriptor left) bytes are copied.
func relayTCP(client, upstream *net.TCPConn, idle time.Duration, st *counters, pp *pipePool) (idled bool) {
	r := &tcpRelay{idle: idle, pipes: pp}
	r.touch()
	if idle > 0 {
		dl := time.Now().Add(idle)
		_ = client.SetDeadline(dl)
		_ = upstream.SetDeadline(dl)
	}
	half := func(dst, src *net.TCPConn, n *atomic.Uint64) {
		if err := copyDir(dst, src, r, n); err != nil {
			// A reset, an error or the idle timeout on one side ends both directions.
			client.Close()
			upstream.Close()
			return
		}
		_ = dst.CloseWrite()
	}
	done := make(chan struct{})
	go func() {
		half(upstream, client, &st.inBytes)
		close(done)
	}()
	half(client, upstream, &st.outBytes)
	<-done
	client.Close()
	upstream.Close()
	return r.idled.Load()
}

// tcpRelay is what both directions of one relayed connection share: the time the
// last byte moved either way, against which each direction's timeouts are judged.
type tcpRelay struct {
	idle  time.Duration
	pipes *pipePool
	last  atomic.Int64 // UnixNano
	idled atomic.Bool
}

func (r *tcpRelay) touch() { r.last.Store(time.Now().UnixNano()) }

// rearm is called when a direction's deadline passed. When the connection moved
// bytes (in either direction) within the idle timeout, it moves the deadline to
// idle after that and returns true; otherwise the connection has idled.
func (r *tcpRelay) rearm(err error, c *net.TCPConn, write bool) bool {
	if r.idle <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	last := time.Unix(0, r.last.Load())
	if time.Since(last) >= r.idle {
		r.idled.Store(true)
		return false
	}
	if write {
		_ = c.SetWriteDeadline(last.Add(r.idle))
	} else {
		_ = c.SetReadDeadline(last.Add(r.idle))
	}
	return true
}

func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
}

// allows applies loadBalancerSourceRanges to load-balancer frontends.
func (fe *frontend) allows(client netip.Addr) bool {
	cfg := fe.cfg.Load()
	if cfg == nil || len(cfg.sourceRanges) == 0 {
		return true
	}
	client = client.Unmap()
	for _, p := range cfg.sourceRanges {
		if p.Contains(client) {
			return true
		}
	}
	return false
}
