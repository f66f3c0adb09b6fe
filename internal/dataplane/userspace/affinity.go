package userspace

import (
	"net/netip"
	"sync"
	"time"
)

// affinity implements sessionAffinity: ClientIP, like an IPVS persistence template:
// a client IP keeps its endpoint while it comes back within the timeout.
type affinity struct {
	timeout time.Duration
	mu      sync.Mutex
	m       map[netip.Addr]affinityEntry
}

type affinityEntry struct {
	backend netip.AddrPort
	expires time.Time
}

func newAffinity(timeout time.Duration) *affinity {
	return &affinity{timeout: timeout, m: map[netip.Addr]affinityEntry{}}
}

// timeoutIs reports whether a is configured with timeout (a nil table has none).
func (a *affinity) timeoutIs(timeout time.Duration) bool {
	if a == nil {
		return timeout == 0
	}
	return a.timeout == timeout
}

// lookup returns the client's endpoint if its entry has not expired.
func (a *affinity) lookup(client netip.Addr, now time.Time) (netip.AddrPort, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.m[client]
	if !ok || now.After(e.expires) {
		return netip.AddrPort{}, false
	}
	return e.backend, true
}

// remember (re)starts the client's timeout on backend.
func (a *affinity) remember(client netip.Addr, backend netip.AddrPort, now time.Time) {
	a.mu.Lock()
	a.m[client] = affinityEntry{backend: backend, expires: now.Add(a.timeout)}
	a.mu.Unlock()
}

// forget drops a client's entry, after its endpoint failed.
func (a *affinity) forget(client netip.Addr) {
	a.mu.Lock()
	delete(a.m, client)
	a.mu.Unlock()
}

// prune drops expired entries so the table does not grow with every client ever seen.
func (a *affinity) prune(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ip, e := range a.m {
		if now.After(e.expires) {
			delete(a.m, ip)
		}
	}
}
