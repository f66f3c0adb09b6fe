package dataplane

import (
	"sync"

	"kproxy.dev/kproxy/internal/state"
)

// Request is what the core asks a mode to apply in one sync.
type Request struct {
	Snapshot *state.Snapshot
	// Full asks for a reconciliation of everything against the kernel: the first
	// sync, the one after a failure, after damage was found, and once an hour.
	Full bool
	// NodeChanged says the node's addresses or labels changed since the last
	// successful sync: NodePort addresses must be recomputed. Changed then names
	// every port, because categorisation depends on the node.
	NodeChanged bool
	// CIDRsChanged says Snapshot.ServiceCIDRs changed since the last successful
	// sync; no port is marked changed for it (modes that use the prefixes render
	// them node-wide).
	CIDRsChanged bool
	// Changed names the ports added, removed or changed since the last successful
	// sync; a partial Apply looks at these only.
	Changed map[state.ServicePortName]struct{}

	mu sync.Mutex
	// cats keeps the categorisation of the ports with many endpoints.
	cats map[state.ServicePortName]state.Categorized
}

// NewRequest returns a full request for snap, e.g. for a pure render.
func NewRequest(snap *state.Snapshot) *Request {
	return &Request{Snapshot: snap, Full: true}
}

// cacheFrom is the number of endpoints from which a port's categorisation is kept
// for the rest of the sync. Below it, categorising again costs less than a cache
// lookup and insert (no allocation: the result shares the Snapshot's array).
// Caching every port made a cold load of 10,000 Services x 3 endpoints in the
// ebpf mode spend as much in the cache as in categorising.
const cacheFrom = 16

// Endpoints returns the port's endpoints categorised for cluster and local
// traffic (state.CategorizeEndpoints), computed once per sync for a port with
// many endpoints. It is the only way a mode learns which endpoints traffic may
// reach; safe for concurrent use.
func (r *Request) Endpoints(n state.ServicePortName) state.Categorized {
	snap := r.Snapshot
	sp, eps := snap.Port(n)
	if sp == nil {
		return state.Categorized{}
	}
	if len(eps) < cacheFrom {
		return state.CategorizeEndpoints(sp, eps, snap.Node)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cats[n]; ok {
		return c
	}
	c := state.CategorizeEndpoints(sp, eps, snap.Node)
	if r.cats == nil {
		r.cats = map[state.ServicePortName]state.Categorized{}
	}
	r.cats[n] = c
	return c
}

// Changes returns Changed as a ChangeSet (for code written against ChangeSet).
func (r *Request) Changes() state.ChangeSet {
	return state.ChangeSet{Ports: r.Changed, NodeChanged: r.NodeChanged, CIDRsChanged: r.CIDRsChanged}
}
