// Package source feeds Kubernetes objects (Services, EndpointSlices, Nodes,
// ServiceCIDRs) into a state.Handler. Two sources exist: file (manifests watched
// with fsnotify) and kube (client-go informers). Both report objects they cannot
// use through Rejects.
package source

import (
	"context"

	"kproxy.dev/kproxy/internal/state"
)

// Source delivers objects to a Handler.
//
// Run delivers the initial state to h, calls synced exactly once when that state
// is delivered (files read, informer caches synced), then keeps delivering changes
// until ctx ends, and returns. It returns an error only when it cannot start (or
// cannot go on at all); bad objects are reported, never fatal.
type Source interface {
	Run(ctx context.Context, h state.Handler, synced func()) error
}
