package lb

import (
	"net/netip"
	"time"
)

func init() { Register("lblc", func(Options) (Scheduler, error) { return newLBLC(), nil }) }

// lblc is locality-based least connection (ip_vs_lblc): a connection goes to the
// backend that last served its destination address, unless that backend is gone, has
// weight 0 or is overloaded; then wlc picks a new one and is remembered. Built for
// cache clusters where each destination should stick to one cache.
type lblc struct {
	locality
	cache map[netip.Addr]*lblcEntry
}

type lblcEntry struct {
	d       *dest
	lastuse time.Time
}

func newLBLC() *lblc {
	s := &lblc{cache: map[netip.Addr]*lblcEntry{}}
	s.init()
	return s
}

func (s *lblc) Name() string { return "lblc" }

func (s *lblc) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.update(bs)
}

func (s *lblc) Pick(c ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	key := c.Dst.Addr()
	e := s.cache[key]
	if e != nil {
		e.lastuse = now
		if s.usable(e.d) {
			return s.picked(e.d)
		}
	}
	d := s.wlc.min()
	if d == nil {
		return Backend{}, false
	}
	if e == nil {
		e = &lblcEntry{lastuse: now}
		s.cache[key] = e
	}
	e.d = d
	return s.picked(d)
}

func (s *lblc) sweep(now time.Time) {
	if !s.sweepDue(now) {
		return
	}
	for k, e := range s.cache {
		if stale(e.lastuse, now, len(s.cache)) || !s.live(e.d) {
			delete(s.cache, k)
		}
	}
}
