package lb

import (
	"maps"
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
	// pos2 is a second position for algorithms that keep their own order (ovf
	// ranks, twos alias columns).
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
	mu    sync.Mutex
	dests []*dest
	// v4 and byAddr (the other addresses) find a destination by address; see
	// addrIndex.
	v4     map[uint64]*dest
	byAddr map[netip.AddrPort]*dest
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
	if len(bs) <= smallPool {
		return p.replaceSmall(bs)
	}
	if p.v4 == nil && p.byAddr == nil && len(p.dests) > 0 {
		// Growing out of a small pool: index what is there first.
		cur := addrIndex{v4: make(map[uint64]*dest, len(p.dests)), other: map[netip.AddrPort]*dest{}}
		for _, d := range p.dests {
			cur.add(d)
		}
		p.v4, p.byAddr = cur.v4, cur.other
	}
	if removed, ok := p.replaceMiddle(bs); ok {
		return removed
	}
	return p.replaceAll(bs)
}

// smallPool is the size up to which a pool has no address index: lookup
// scans its few destinations, which is as fast as hashing, and a Service of
// 3 endpoints does without two maps (about 500 bytes; 10,000 Services in
// userspace mode kept 5 MB of them).
const smallPool = 8

// replaceSmall is replace for at most smallPool backends: no index, a scan.
func (p *pool) replaceSmall(bs []Backend) (removed []*dest) {
	old := p.dests
	dests := make([]*dest, 0, len(bs))
	var slab []dest
	for _, b := range bs {
		if findIn(dests, b.Addr) != nil {
			continue // a repeat: the first wins
		}
		d := findIn(old, b.Addr)
		if d == nil {
			if len(slab) == 0 {
				slab = make([]dest, len(bs)-len(dests))
			}
			d, slab = &slab[0], slab[1:]
		}
		d.Backend = b
		d.pos = len(dests)
		dests = append(dests, d)
	}
	for _, d := range old {
		if findIn(dests, d.Addr) != d {
			removed = append(removed, d)
		}
	}
	p.last = nil
	p.dests = dests
	p.v4, p.byAddr = nil, nil
	return removed
}

// findIn scans ds for a.
func findIn(ds []*dest, a netip.AddrPort) *dest {
	for _, d := range ds {
		if d.Addr == a {
			return d
		}
	}
	return nil
}

// replaceAll is replace building the index anew.
func (p *pool) replaceAll(bs []Backend) (removed []*dest) {
	old := addrIndex{v4: p.v4, other: p.byAddr}
	cur := addrIndex{v4: make(map[uint64]*dest, len(bs)), other: map[netip.AddrPort]*dest{}}
	p.last = nil
	p.dests = make([]*dest, 0, len(bs))
	// New destinations come from one slab, in list order: schedulers that walk the
	// list (rr, wrr, the lc family's rotation among equals) then read memory
	// sequentially, which matters once 100,000 backends no longer fit in cache.
	fresh := 0
	for _, b := range bs {
		if old.find(b.Addr) == nil {
			fresh++ // duplicates overcount a little; never undercount
		}
	}
	slab := make([]dest, fresh)
	for _, b := range bs {
		if cur.find(b.Addr) != nil {
			continue
		}
		d := old.find(b.Addr)
		if d == nil {
			d, slab = &slab[0], slab[1:]
		}
		d.Backend = b
		d.pos = len(p.dests)
		p.dests = append(p.dests, d)
		cur.add(d)
	}
	old.each(func(d *dest) {
		if cur.find(d.Addr) != d {
			removed = append(removed, d)
		}
	})
	p.v4, p.byAddr = cur.v4, cur.other
	return removed
}

// replaceMiddle is replace for a list that keeps a prefix or suffix of the
// current destinations (by address, in order), as a change of a few endpoints
// of a large Service does: it copies the index and changes only what lies
// between, so that one endpoint moved among 10,000 costs two map copies
// rather than 30,000 map operations. It reports false, having changed
// nothing, when nothing is kept or the list repeats an address (replaceAll
// then keeps the first).
func (p *pool) replaceMiddle(bs []Backend) (removed []*dest, ok bool) {
	pre, suf := 0, 0
	for pre < len(bs) && pre < len(p.dests) && bs[pre].Addr == p.dests[pre].Addr {
		pre++
	}
	for suf < len(bs)-pre && suf < len(p.dests)-pre && bs[len(bs)-1-suf].Addr == p.dests[len(p.dests)-1-suf].Addr {
		suf++
	}
	if pre+suf == 0 {
		return nil, false
	}
	oldMid := p.dests[pre : len(p.dests)-suf]
	newMid := bs[pre : len(bs)-suf]
	old := addrIndex{v4: p.v4, other: p.byAddr}
	cur := addrIndex{v4: maps.Clone(p.v4), other: maps.Clone(p.byAddr)}
	if cur.v4 == nil {
		cur.v4 = map[uint64]*dest{}
	}
	if cur.other == nil {
		cur.other = map[netip.AddrPort]*dest{}
	}
	for _, d := range oldMid {
		cur.remove(d.Addr)
	}
	mid := make([]*dest, 0, len(newMid))
	var slab []dest
	for _, b := range newMid {
		if cur.find(b.Addr) != nil {
			return nil, false // a repeated address
		}
		d := old.find(b.Addr) // nil, or one of oldMid: the others are in cur
		if d == nil {
			if len(slab) == 0 {
				slab = make([]dest, len(newMid)-len(mid))
			}
			d, slab = &slab[0], slab[1:]
		}
		d.Backend = b
		cur.add(d)
		mid = append(mid, d)
	}
	for _, d := range oldMid {
		if cur.find(d.Addr) != d {
			removed = append(removed, d)
		}
	}
	dests := make([]*dest, 0, len(bs))
	dests = append(dests, p.dests[:pre]...)
	dests = append(dests, mid...)
	dests = append(dests, p.dests[len(p.dests)-suf:]...)
	for i, d := range dests {
		d.Backend = bs[i]
		d.pos = i
	}
	p.last = nil
	p.dests = dests
	p.v4, p.byAddr = cur.v4, cur.other
	return removed, true
}

// addrIndex finds destinations by address. IPv4 backends are keyed by a packed
// integer: cheaper to hash than an AddrPort, and the table is less than half the
// size, which matters for cache misses at 100,000 backends.
type addrIndex struct {
	v4    map[uint64]*dest
	other map[netip.AddrPort]*dest
}

func (x addrIndex) find(a netip.AddrPort) *dest {
	if k, ok := v4Key(a); ok {
		return x.v4[k]
	}
	return x.other[a]
}

func (x addrIndex) add(d *dest) {
	if k, ok := v4Key(d.Addr); ok {
		x.v4[k] = d
	} else {
		x.other[d.Addr] = d
	}
}

func (x addrIndex) remove(a netip.AddrPort) {
	if k, ok := v4Key(a); ok {
		delete(x.v4, k)
	} else {
		delete(x.other, a)
	}
}

func (x addrIndex) each(f func(d *dest)) {
	for _, d := range x.v4 {
		f(d)
	}
	for _, d := range x.other {
		f(d)
	}
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
	if p.v4 == nil && p.byAddr == nil {
		return findIn(p.dests, addr)
	}
	return addrIndex{v4: p.v4, other: p.byAddr}.find(addr)
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
func (p *pool) live(d *dest) bool { return d != nil && p.lookup(d.Addr) == d }

// overhead is the kernel's ip_vs_dest_conn_overhead: an active connection costs 256
// times an inactive one, which is mostly TIME_WAIT and cheap.
func (d *dest) overhead() int64 { return d.active<<8 + d.inactive }
