package userspace

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxDatagram is the largest UDP payload; each flow's reply reader holds one buffer.
const maxDatagram = 65535

// udpFrontend relays UDP. Each client address is a flow with its own connected
// socket towards the chosen endpoint; replies go back out of the frontend's socket,
// so the client sees them come from the Service address.
type udpFrontend struct {
	p    *Proxier
	fe   *frontend
	conn *net.UDPConn

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
}

type udpFlow struct {
	client netip.AddrPort
	up     *net.UDPConn
	lease  *lease
	// last is the time of the flow's last packet either way, in UnixNano.
	last atomic.Int64
}

func (p *Proxier) listenUDP(fe *frontend) error {
	c, err := listenUDPShared(fe.key.addr)
	if err != nil {
		return err
	}
	fe.udp = &udpFrontend{p: p, fe: fe, conn: c, flows: map[netip.AddrPort]*udpFlow{}}
	p.relays.Add(1)
	go fe.udp.serve()
	return nil
}

func (u *udpFrontend) serve() {
	defer u.p.relays.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		f := u.flow(src)
		if f == nil {
			continue // no endpoint, or the client is not allowed: drop
		}
		f.last.Store(time.Now().UnixNano())
		if _, err := f.up.Write(buf[:n]); err == nil {
			f.lease.b.stats.inBytes.Add(uint64(n))
		}
	}
}

// flow returns the client's flow, starting one on a newly chosen endpoint.
func (u *udpFrontend) flow(src netip.AddrPort) *udpFlow {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f := u.flows[src]; f != nil {
		return f
	}
	if u.closed || !u.fe.allows(src.Addr()) {
		return nil
	}
	if !u.p.admit(src.Addr(), "udp") {
		return nil
	}
	l, ok := u.fe.choose(src, time.Now(), &u.p.classify)
	if !ok {
		u.p.admission.release(src.Addr())
		return nil
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.b.addr))
	if err != nil {
		u.p.admission.release(src.Addr())
		l.failed(src.Addr())
		u.p.causes.warn("endpoint unreachable", l.b.addr.String(), err, "service", u.fe.svc.String(), "endpoint", l.b.addr.String())
		return nil
	}
	l.established(false)
	f := &udpFlow{client: src, up: up, lease: l}
	f.last.Store(time.Now().UnixNano())
	u.flows[src] = f
	u.p.relays.Add(1)
	u.fe.open.Add(1)
	go u.replies(f)
	return f
}

// replies copies the endpoint's datagrams back to the client until the flow idles out.
func (u *udpFrontend) replies(f *udpFlow) {
	defer u.p.relays.Done()
	defer u.fe.open.Add(-1)
	defer u.end(f)
	buf := make([]byte, maxDatagram)
	idle := u.p.udpIdle
	for {
		last := time.Unix(0, f.last.Load())
		if time.Since(last) >= idle {
			return
		}
		_ = f.up.SetReadDeadline(last.Add(idle))
		n, err := f.up.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				continue // the loop head decides whether the flow really idled
			case errors.Is(err, syscall.ECONNREFUSED):
				continue // ICMP port unreachable from the endpoint: keep the flow, like conntrack
			default:
				return
			}
		}
		f.last.Store(time.Now().UnixNano())
		if _, err := u.conn.WriteToUDPAddrPort(buf[:n], f.client); err == nil {
			f.lease.b.stats.outBytes.Add(uint64(n))
		}
	}
}

func (u *udpFrontend) end(f *udpFlow) {
	u.mu.Lock()
	if u.flows[f.client] == f {
		delete(u.flows, f.client)
	}
	u.mu.Unlock()
	f.up.Close()
	f.lease.done()
	u.p.admission.release(f.client.Addr())
}

// dropFlowsNotIn ends flows whose endpoint is no longer in the set of cfg they
// were placed on, so that their clients are placed again, as the kernel modes do
// by deleting stale UDP conntrack entries.
func (u *udpFrontend) dropFlowsNotIn(cfg *feConfig) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for src, f := range u.flows {
		set := cfg.set
		if f.lease.inCluster {
			set = cfg.inCluster
		}
		if set != nil && set.has(f.lease.b.addr) {
			continue
		}
		delete(u.flows, src)
		f.up.Close()
	}
}

// close stops the frontend: its socket carries the replies too, so every flow ends.
func (u *udpFrontend) close() {
	u.mu.Lock()
	u.closed = true
	for src, f := range u.flows {
		delete(u.flows, src)
		f.up.Close()
	}
	u.mu.Unlock()
	u.conn.Close()
}
