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

	mu   sync.Mutex
	cats map[state.ServicePortName]state.Categorized
}

// NewRequest returns a full request for snap, e.g. for a pure render.
func NewRequest(snap *state.Snapshot) *Request {
	return newRequest(snap, true, len(snap.Services))
}

// newRequest sizes the categorisation cache for the ports the sync will read:
// growing it one port at a time cost a cold load of 10,000 Services more than
// the categorisation itself.
func newRequest(snap *state.Snapshot, full bool, ports int) *Request {
	return &Request{Snapshot: snap, Full: full, cats: make(map[state.ServicePortName]state.Categorized, ports)}
}

// Endpoints returns the port's endpoints categorised for cluster and local
// traffic (state.CategorizeEndpoints), computed once per sync. It is the only way a
// mode learns which endpoints traffic may reach; safe for concurrent use.
func (r *Request) Endpoints(n state.ServicePortName) state.Categorized {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cats[n]; ok {
		return c
	}
	c := r.Snapshot.Categorize(n)
	r.cats[n] = c
	return c
}

// Changes returns Changed as a ChangeSet (for code written against ChangeSet).
func (r *Request) Changes() state.ChangeSet {
	return state.ChangeSet{Ports: r.Changed, NodeChanged: r.NodeChanged, CIDRsChanged: r.CIDRsChanged}
}
