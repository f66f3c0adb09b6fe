// Package lb holds kproxy's load-balancing schedulers. Each algorithm follows the
// semantics of the Linux IPVS scheduler of the same name (see docs/schedulers.md) and
// lives in a file of its own. The userspace dataplane picks endpoints with them, and
// the IPVS and nftables dataplanes validate Service annotations against Names.
package lb

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
)

// Backend is one real server as a scheduler sees it.
type Backend struct {
	Addr netip.AddrPort
	// Weight is the relative share of new connections; 0 means "no new connections".
	Weight int
}

// ConnInfo describes the connection a scheduler is asked to place.
type ConnInfo struct {
	Src      netip.AddrPort
	Dst      netip.AddrPort
	Protocol string // "TCP", "UDP" or "SCTP"
}

// Scheduler picks an endpoint for a new connection (IPVS semantics). Implementations
// are safe for concurrent use.
type Scheduler interface {
	// Name is the IPVS name of the algorithm, e.g. "wrr".
	Name() string
	// Update replaces the backend set. Connection counts of backends that stay are kept.
	Update(backends []Backend)
	// Pick chooses a backend for a new connection; false when none can take it.
	// It does not count the connection: call Opened for it, as the kernel binds a
	// connection to its destination at once (the lc family would otherwise send a
	// burst of new connections to the same backend).
	Pick(c ConnInfo) (Backend, bool)
	// Opened and Closed keep the kernel's connection counters: active connections
	// are established TCP ones, inactive are all others (UDP flows, half-open TCP).
	// Moving a connection from inactive to active is Closed(addr, false) followed
	// by Opened(addr, true). Addresses the scheduler does not know (removed by an
	// Update) are ignored, and counters never go below zero.
	Opened(addr netip.AddrPort, active bool)
	Closed(addr netip.AddrPort, active bool)
	// Counters reports ActiveConn and InActConn per backend, as ipvsadm -Ln shows them.
	Counters() []Counter
}

// Counter is one backend's connection count.
type Counter struct {
	Addr     netip.AddrPort
	Weight   int
	Active   int64
	Inactive int64
}

// Options tune schedulers that have parameters.
type Options struct {
	// Flags are the IPVS scheduler flags, e.g. "mh-port", "mh-fallback".
	Flags []string
	// MHTableSize is the Maglev lookup table size (a prime); 0 means 65537.
	MHTableSize int
}

// Factory builds a scheduler.
type Factory func(o Options) (Scheduler, error)

type entry struct {
	factory Factory
	flags   map[string]bool
}

var (
	registryMu sync.RWMutex
	registry   = map[string]entry{}
)

// Register adds an algorithm under its IPVS name with the flags it accepts.
// It is called from init functions, one per algorithm file.
func Register(name string, f Factory, flags ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	fl := map[string]bool{}
	for _, x := range flags {
		fl[x] = true
	}
	registry[name] = entry{factory: f, flags: fl}
}

// Names lists the registered algorithms, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Validate reports whether name is a known algorithm and every flag is one it accepts.
func Validate(name string, flags []string) error {
	registryMu.RLock()
	e, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return fmt.Errorf("unknown scheduler %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	for _, f := range flags {
		if !e.flags[f] {
			return fmt.Errorf("scheduler %q does not accept flag %q", name, f)
		}
	}
	return nil
}

// New builds the named scheduler.
func New(name string, o Options) (Scheduler, error) {
	if err := Validate(name, o.Flags); err != nil {
		return nil, err
	}
	registryMu.RLock()
	e := registry[name]
	registryMu.RUnlock()
	return e.factory(o)
}
