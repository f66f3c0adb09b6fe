package lb

import (
	"net/netip"
	"slices"
	"time"
)

func init() { Register("lblcr", func(Options) (Scheduler, error) { return newLBLCR(), nil }) }

// lblcr is locality-based least connection with replication (ip_vs_lblcr): each
// destination address maps to a set of backends and the least loaded member of the
// set (overhead/weight) takes the connection. When that member is overloaded, wlc
// picks a backend from the whole pool and adds it to the set; a set unchanged for the
// expiry time sheds its most loaded member. For popular destinations that outgrow one
// cache.
type lblcr struct {
	locality
	cache map[netip.Addr]*lblcrEntry
}

type lblcrEntry struct {
	set              []*dest
	lastuse, lastmod time.Time
}

func newLBLCR() *lblcr {
	s := &lblcr{cache: map[netip.Addr]*lblcrEntry{}}
	s.init()
	return s
}

func (s *lblcr) Name() string { return "lblcr" }

func (s *lblcr) Update(bs []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.update(bs)
	for _, e := range s.cache {
		e.set = slices.DeleteFunc(e.set, func(d *dest) bool { return !s.live(d) })
	}
}

func (s *lblcr) Pick(c ConnInfo) (Backend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	key := c.Dst.Addr()
	e := s.cache[key]
	if e != nil {
		e.lastuse = now
		d := setMin(e.set)
		if len(e.set) > 1 && now.Sub(e.lastmod) > localityExpire {
			if m := setMax(e.set); m != nil {
				e.set = slices.DeleteFunc(e.set, func(x *dest) bool { return x == m })
				e.lastmod = now
			}
		}
		if d != nil && !s.overloaded(d) {
			return s.picked(d)
		}
	}
	d := s.wlc.min()
	if d == nil {
		return Backend{}, false
	}
	if e == nil {
		e = &lblcrEntry{lastuse: now}
		s.cache[key] = e
	}
	if !slices.Contains(e.set, d) {
		e.set = append(e.set, d)
		e.lastmod = now
	}
	return s.picked(d)
}

func (s *lblcr) sweep(now time.Time) {
	if !s.sweepDue(now) {
		return
	}
	for k, e := range s.cache {
		if stale(e.lastuse, now, len(s.cache)) {
			delete(s.cache, k)
		}
	}
}

// setMin is the member with the least overhead/weight that can take connections.
func setMin(set []*dest) *dest {
	var least *dest
	for _, d := range set {
		if d.available() && (least == nil || d.overhead()*int64(least.Weight) < least.overhead()*int64(d.Weight)) {
			least = d
		}
	}
	return least
}

// setMax is the member with the highest overhead/weight among those of positive
// weight, the one the kernel drops when a set has gone unchanged too long.
func setMax(set []*dest) *dest {
	var most *dest
	for _, d := range set {
		if d.available() && (most == nil || most.overhead()*int64(d.Weight) < d.overhead()*int64(most.Weight)) {
			most = d
		}
	}
	return most
}
