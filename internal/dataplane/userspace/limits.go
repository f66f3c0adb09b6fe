package userspace

import (
	"net/netip"
	"sync"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
)

const (
	// DefaultIdleTimeout closes a relayed TCP connection that moved no byte either
	// way for this long: IPVS's default TCP established timeout (900 s), after which
	// the kernel mode would forget the connection too.
	DefaultIdleTimeout = 15 * time.Minute
	// fdsPerConnShare is the default global cap's share of the descriptor limit: a
	// relayed connection holds 2 descriptors, 4 while bytes are in flight (a pipe),
	// and listeners, the API connection and logs need the rest.
	fdsPerConnShare = 4
	// perClientShare is the default per-client cap's share of the global cap: one
	// client can hold at most an eighth of the node's capacity.
	perClientShare = 8
	// minDefaultConns is the floor of the derived default caps.
	minDefaultConns = 64
	// fallbackMaxConns is the global default where the descriptor limit is unknown.
	fallbackMaxConns = 16384
)

// limits are the effective connection limits; 0 means none.
type limits struct {
	maxConns, perClient int
	idle                time.Duration
}

// resolveLimits applies the defaults to what the operator asked for: 0 means the
// default, negative means no limit. nofile is the soft RLIMIT_NOFILE (0: unknown).
func resolveLimits(o dataplane.RelayLimits, nofile uint64) limits {
	var l limits
	switch {
	case o.MaxConns > 0:
		l.maxConns = o.MaxConns
	case o.MaxConns == 0:
		l.maxConns = fallbackMaxConns
		if nofile > 0 {
			l.maxConns = max(minDefaultConns, int(min(nofile, 1<<30)/fdsPerConnShare))
		}
	}
	switch {
	case o.MaxConnsPerClient > 0:
		l.perClient = o.MaxConnsPerClient
	case o.MaxConnsPerClient == 0 && l.maxConns > 0:
		l.perClient = max(minDefaultConns, l.maxConns/perClientShare)
	case o.MaxConnsPerClient == 0:
		l.perClient = max(minDefaultConns, fallbackMaxConns/perClientShare)
	}
	switch {
	case o.IdleTimeout > 0:
		l.idle = o.IdleTimeout
	case o.IdleTimeout == 0:
		l.idle = DefaultIdleTimeout
	}
	return l
}

// refusal says why a connection was not taken; its String is the metric label.
type refusal int

const (
	admitted refusal = iota
	refusedMaxConns
	refusedPerClient
)

func (r refusal) String() string {
	return [...]string{"", "max_conns", "max_conns_per_client"}[r]
}

// admission counts the open TCP connections and UDP flows, globally and per
// client, against the limits.
type admission struct {
	lim limits
	mu  sync.Mutex
	all int
	per map[netip.Addr]int
}

func newAdmission(l limits) *admission {
	return &admission{lim: l, per: map[netip.Addr]int{}}
}

// clientKey is the unit of the per-client cap: the address, or its /64 in IPv6,
// the smallest block one host is normally given.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// acquire takes one connection slot for client, or says which cap refuses it.
func (ad *admission) acquire(client netip.Addr) refusal {
	k := clientKey(client)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.lim.maxConns > 0 && ad.all >= ad.lim.maxConns {
		return refusedMaxConns
	}
	if ad.lim.perClient > 0 && ad.per[k] >= ad.lim.perClient {
		return refusedPerClient
	}
	ad.all++
	ad.per[k]++
	return admitted
}

// release gives back a slot acquire took.
func (ad *admission) release(client netip.Addr) {
	k := clientKey(client)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	ad.all--
	if n := ad.per[k] - 1; n > 0 {
		ad.per[k] = n
	} else {
		delete(ad.per, k)
	}
}

// open is the number of connections and flows holding a slot.
func (ad *admission) open() int {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.all
}
