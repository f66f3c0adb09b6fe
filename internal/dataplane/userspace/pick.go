package userspace

import (
	"net/netip"
	"time"

	"kproxy.dev/kproxy/internal/lb"
)

// lease is one connection's claim on a backend: it remembers which scheduler
// counted it, so that Closed reaches the same counters even after a Sync swapped
// the frontend's config.
type lease struct {
	cfg    *feConfig
	b      *backend
	active bool
}

// choose places a new connection from src: the client's affinity entry when it is
// still valid and its endpoint still takes connections, else the scheduler's pick.
// The connection is counted as inactive (half-open, or a UDP flow) until
// established() moves it.
func (fe *frontend) choose(src netip.AddrPort, now time.Time) (*lease, bool) {
	cfg := fe.cfg.Load()
	if cfg == nil {
		return nil, false
	}
	if cfg.affinity != nil {
		if addr, ok := cfg.affinity.lookup(src.Addr(), now); ok {
			if b := cfg.backends[addr]; b != nil && cfg.current[addr] > 0 {
				return cfg.lease(b, now, src), true
			}
		}
	}
	picked, ok := cfg.sched.Pick(lb.ConnInfo{Src: src, Dst: fe.key.addr, Protocol: string(fe.key.proto)})
	if !ok {
		return nil, false
	}
	b := cfg.backends[picked.Addr]
	if b == nil {
		// A Sync installed a new config between Load and Pick; it updates the
		// scheduler only after installing it, so the new config has the backend.
		if cfg = fe.cfg.Load(); cfg.backends[picked.Addr] == nil {
			return nil, false
		}
		b = cfg.backends[picked.Addr]
	}
	return cfg.lease(b, now, src), true
}

func (cfg *feConfig) lease(b *backend, now time.Time, src netip.AddrPort) *lease {
	if cfg.affinity != nil {
		cfg.affinity.remember(src.Addr(), b.addr, now)
	}
	cfg.sched.Opened(b.addr, false)
	return &lease{cfg: cfg, b: b}
}

// established records a connection that reached its endpoint (TCP): it becomes
// active for the scheduler, and counts in the statistics and metrics.
func (l *lease) established(active bool) {
	if active {
		l.cfg.sched.Closed(l.b.addr, false)
		l.cfg.sched.Opened(l.b.addr, true)
		l.active = true
	}
	l.b.stats.conns.Add(1)
	l.b.metric.opened()
}

// failed gives back a lease whose endpoint could not be reached.
func (l *lease) failed(src netip.Addr) {
	l.cfg.sched.Closed(l.b.addr, false)
	if l.cfg.affinity != nil {
		l.cfg.affinity.forget(src)
	}
}

// done ends an established connection.
func (l *lease) done() {
	l.cfg.sched.Closed(l.b.addr, l.active)
	l.b.metric.closed()
}
