package userspace

import (
	"net/netip"
	"time"

	"kproxy.dev/kproxy/internal/lb"
)

// lease is one connection's claim on a backend: it remembers which set's
// scheduler counted it, so that Closed reaches the same counters even after a
// Sync swapped the frontend's config.
type lease struct {
	set *backendSet
	b   *backend
	// inCluster is true when the connection was placed on feConfig.inCluster.
	inCluster bool
	active    bool
}

// choose places a new connection from src: on the config's inCluster set when
// it has one and in says the client is in the cluster, else on its set; there
// on the client's affinity entry when it is still valid and its endpoint still
// takes connections, else on the scheduler's pick. It reports false when the
// client has no endpoint. The connection is counted as inactive (half-open, or a
// UDP flow) until established() moves it.
func (fe *frontend) choose(src netip.AddrPort, now time.Time, in *classifier) (*lease, bool) {
	cfg := fe.cfg.Load()
	if cfg == nil {
		return nil, false
	}
	short := cfg.inCluster != nil && in.inCluster(src.Addr())
	set := cfg.set
	if short {
		set = cfg.inCluster
	}
	if set.affinity != nil {
		if addr, ok := set.affinity.lookup(src.Addr(), now); ok {
			if e, ok := set.entry(addr); ok && e.inList && e.weight > 0 {
				return set.lease(e.b, now, src, short), true
			}
		}
	}
	picked, ok := set.sched.Pick(lb.ConnInfo{Src: src, Dst: fe.key.addr, Protocol: string(fe.key.proto)})
	if !ok {
		return nil, false
	}
	b := set.backend(picked.Addr)
	if b == nil {
		// A Sync installed a new config between Load and Pick; it updates the
		// scheduler only after installing it, so the new config has the backend.
		cfg = fe.cfg.Load()
		if set = cfg.set; short {
			set = cfg.inCluster
		}
		if set == nil {
			return nil, false
		}
		if b = set.backend(picked.Addr); b == nil {
			return nil, false
		}
	}
	return set.lease(b, now, src, short), true
}

func (s *backendSet) lease(b *backend, now time.Time, src netip.AddrPort, inCluster bool) *lease {
	if s.affinity != nil {
		s.affinity.remember(src.Addr(), b.addr, now)
	}
	s.sched.Opened(b.addr, false)
	return &lease{set: s, b: b, inCluster: inCluster}
}

// established records a connection that reached its endpoint (TCP): it becomes
// active for the scheduler, and counts in the statistics and metrics.
func (l *lease) established(active bool) {
	if active {
		l.set.sched.Closed(l.b.addr, false)
		l.set.sched.Opened(l.b.addr, true)
		l.active = true
	}
	l.b.stats.conns.Add(1)
	l.b.metric.opened()
}

// failed gives back a lease whose endpoint could not be reached.
func (l *lease) failed(src netip.Addr) {
	l.set.sched.Closed(l.b.addr, false)
	if l.set.affinity != nil {
		l.set.affinity.forget(src)
	}
}

// done ends an established connection.
func (l *lease) done() {
	l.set.sched.Closed(l.b.addr, l.active)
	l.b.metric.closed()
}
