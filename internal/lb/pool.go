package lb

import (
	"net/netip"
	"sync"
)

// dest is one backend with the kernel's per-destination connection counters.
type dest struct {
	Backend
	active   int64
	inactive int64
	// pos is the index in pool.dests.
	pos int
	// bkt, prev and next place the destination in a loadIndex bucket.
	bkt        *bucket
	prev, next *dest
	// pos2 is a second position for algorithms that keep their own order (ovf).
	pos2 int
	// half caches "active*2 < weight" for the locality schedulers' overload test.
	half bool
}

// available mirrors the kernel's test for new connections: a weight of 0 (the
// "quiesced" state) takes none.
func (d *dest) available() bool { return d.Weight > 0 }

// pool is the backend set and counters every scheduler shares. The embedding
// scheduler holds mu while it calls into pool.
type pool struct {
	mu     sync.Mutex
	dests  []*dest
	byAddr map[netip.AddrPort]*dest
	// v4 indexes IPv4 backends by a packed integer: cheaper to hash than an
	// AddrPort, and the table is less than half the size, which matters for cache
	// misses at 100,000 backends.
	v4 map[uint64]*dest
	// last is the backend of the last Pick: the dataplane calls Opened for it right
	// after, so that lookup needs no map.
	last *dest
	// changed, when set, is told about every counter or weight change so that an
	// algorithm can keep an index ordered by load.
	changed func(d *dest)
}

// replace installs a new backend set. Counters of addresses that stay are kept,
// because connections to them are still open. Duplicate addresses keep the first.
// It returns the destinations that were dropped.
func (p *pool) replace(bs []Backend) (removed []*dest) {
	old := p.byAddr
	p.byAddr = make(map[netip.AddrPort]*dest, len(bs))
	p.v4 = make(map[uint64]*dest, len(bs))
	p.last = nil
	p.dests = make([]*dest, 0, len(bs))
	for _, b := range bs {
		if _, dup := p.byAddr[b.Addr]; dup {
			continue
		}
		d := old[b.Addr]
		if d == nil {
			d = &dest{}
		}
		d.Backend = b
		d.pos = len(p.dests)
		p.dests = append(p.dests, d)
		p.byAddr[b.Addr] = d
		if k, ok := v4Key(b.Addr); ok {
			p.v4[k] = d
		}
	}
	for a, d := range old {
		if _, kept := p.byAddr[a]; !kept {
			removed = append(removed, d)
		}
	}
	return removed
}

func v4Key(a netip.AddrPort) (uint64, bool) {
	ip := a.Addr()
	if !ip.Is4() {
		return 0, false
	}
	b := ip.As4()
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(a.Port()), true
}

// lookup finds the destination of addr, or nil.
func (p *pool) lookup(addr netip.AddrPort) *dest {
	if p.last != nil && p.last.Addr == addr {
		return p.last
	}
	if k, ok := v4Key(addr); ok {
		return p.v4[k]
	}
	return p.byAddr[addr]
}

// picked records d as the last pick and returns it as Pick's result.
func (p *pool) picked(d *dest) (Backend, bool) {
	p.last = d
	return d.Backend, true
}

// Opened counts a new connection on addr; unknown addresses are ignored (the backend
// was removed while the connection was being set up).
func (p *pool) Opened(addr netip.AddrPort, active bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.lookup(addr)
	if d == nil {
		return
	}
	if active {
		d.active++
	} else {
		d.inactive++
	}
	if p.changed != nil {
		p.changed(d)
	}
}

// Closed undoes Opened. Counters never go below zero, so a Closed for a connection
// opened before an Update re-added the backend cannot corrupt the load order.
func (p *pool) Closed(addr netip.AddrPort, active bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.lookup(addr)
	if d == nil {
		return
	}
	c := &d.inactive
	if active {
		c = &d.active
	}
	if *c == 0 {
		return
	}
	*c--
	if p.changed != nil {
		p.changed(d)
	}
}

// Counters reports each backend's counters in backend order.
func (p *pool) Counters() []Counter {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Counter, len(p.dests))
	for i, d := range p.dests {
		out[i] = Counter{Addr: d.Addr, Weight: d.Weight, Active: d.active, Inactive: d.inactive}
	}
	return out
}

// live reports whether d is still one of the pool's backends (entries in the
// lblc/lblcr caches may outlive an Update).
func (p *pool) live(d *dest) bool { return d != nil && p.byAddr[d.Addr] == d }

// overhead is the kernel's ip_vs_dest_conn_overhead: an active connection costs 256
// times an inactive one, which is mostly TIME_WAIT and cheap.
func (d *dest) overhead() int64 { return d.active<<8 + d.inactive }
