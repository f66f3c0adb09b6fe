package userspace

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// copyChunk is how much one splice round moves before the byte counters are
// updated, so that long-lived connections show traffic (and rates) while open.
const copyChunk = 1 << 20

// localSendBuffer bounds the send buffer of a relay socket whose peer is on this
// node. Spliced pages then reach the receiver while still in cache: on loopback
// this cut the CPU per relayed byte by about a third (docs/performance.md). Peers on
// other nodes keep the kernel's autotuning, which a fixed buffer would cap at
// buffer/RTT.
const localSendBuffer = 128 << 10

func (p *Proxier) listenTCP(fe *frontend) error {
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(fe.key.addr))
	if err != nil {
		return err
	}
	fe.tcp = ln
	p.relays.Add(1)
	go p.acceptTCP(fe)
	return nil
}

func (p *Proxier) acceptTCP(fe *frontend) {
	defer p.relays.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := fe.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait rather than spin.
			p.log.Warn("accept failed", "service", fe.svc.String(), "address", fe.key.addr.String(), "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
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
	upstream, l := p.dialTCP(fe, src)
	if upstream == nil {
		// No endpoint: refuse the way the kernel modes' REJECT does, with a reset.
		reset(client)
		return
	}
	p.conns.add(upstream)
	defer p.conns.remove(upstream)
	if l.b.local {
		_ = upstream.SetWriteBuffer(localSendBuffer)
	}
	if src.Addr().IsLoopback() {
		_ = client.SetWriteBuffer(localSendBuffer)
	}
	l.established(true)
	defer l.done()
	relayTCP(client, upstream, &l.b.stats)
}

// dialTCP connects to an endpoint, trying others when one does not answer, as
// upstream's userspace proxy did.
func (p *Proxier) dialTCP(fe *frontend, src netip.AddrPort) (*net.TCPConn, *lease) {
	d := net.Dialer{Timeout: dialTimeout}
	for attempt := 0; attempt < 3; attempt++ {
		l, ok := fe.choose(src, time.Now())
		if !ok {
			return nil, nil
		}
		// DialTCP with a netip address skips the string parsing and resolver
		// machinery of Dial: it is a measurable part of a short connection. The
		// context is not cancelable on purpose: deriving from one costs a
		// registration per dial, and a pending dial ends within dialTimeout anyway.
		c, err := d.DialTCP(context.Background(), "tcp", netip.AddrPort{}, l.b.addr)
		if err == nil {
			return c, l
		}
		l.failed(src.Addr())
		p.log.Debug("endpoint unreachable", "service", fe.svc.String(), "endpoint", l.b.addr.String(), "err", err)
		if p.closed.Load() {
			return nil, nil
		}
	}
	return nil, nil
}

// relayTCP copies both ways until both sides have finished, passing half-closes on.
// Both arguments stay *net.TCPConn so io.Copy can splice (zero-copy) on Linux.
func relayTCP(client, upstream *net.TCPConn, st *counters) {
	half := func(dst, src *net.TCPConn, n *atomic.Uint64) {
		if err := copyCounted(dst, src, n); err != nil {
			// A reset or error on one side ends the other direction too.
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
}

// copyCounted is io.Copy in bounded rounds. io.CopyN hands TCPConn.ReadFrom an
// io.LimitedReader over the source TCPConn, which the runtime still splices.
func copyCounted(dst, src *net.TCPConn, n *atomic.Uint64) error {
	for {
		k, err := io.CopyN(dst, src, copyChunk)
		n.Add(uint64(k))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
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

// close stops the frontend from taking new connections; open relays carry on.
func (fe *frontend) close() {
	fe.closeOnce.Do(func() {
		if fe.tcp != nil {
			fe.tcp.Close()
		}
		if fe.udp != nil {
			fe.udp.close()
		}
	})
}
