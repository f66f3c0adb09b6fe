// Package sourcetest has a state.Handler that records what a source delivers, for
// the sources' tests.
package sourcetest

import (
	"sort"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"kproxy.dev/kproxy/internal/state"
)

// Recorder is a goroutine-safe state.Handler that keeps the current objects and a
// log of calls ("upsert Service ns/name", "delete EndpointSlice ns/name", ...).
type Recorder struct {
	mu       sync.Mutex
	changed  chan struct{}
	calls    []string
	Services map[string]*v1.Service
	Slices   map[string]*discovery.EndpointSlice
	Nodes    map[string]*v1.Node
	CIDRs    map[string]*networkingv1.ServiceCIDR
}

var (
	_ state.Handler            = (*Recorder)(nil)
	_ state.ServiceCIDRHandler = (*Recorder)(nil)
)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		changed:  make(chan struct{}, 1),
		Services: map[string]*v1.Service{},
		Slices:   map[string]*discovery.EndpointSlice{},
		Nodes:    map[string]*v1.Node{},
		CIDRs:    map[string]*networkingv1.ServiceCIDR{},
	}
}

func (r *Recorder) record(call string, apply func()) {
	r.mu.Lock()
	apply()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// UpsertService implements state.Handler.
func (r *Recorder) UpsertService(svc *v1.Service) {
	k := svc.Namespace + "/" + svc.Name
	r.record("upsert Service "+k, func() { r.Services[k] = svc })
}

// DeleteService implements state.Handler.
func (r *Recorder) DeleteService(ns, name string) {
	k := ns + "/" + name
	r.record("delete Service "+k, func() { delete(r.Services, k) })
}

// UpsertEndpointSlice implements state.Handler.
func (r *Recorder) UpsertEndpointSlice(es *discovery.EndpointSlice) {
	k := es.Namespace + "/" + es.Name
	r.record("upsert EndpointSlice "+k, func() { r.Slices[k] = es })
}

// DeleteEndpointSlice implements state.Handler.
func (r *Recorder) DeleteEndpointSlice(ns, name string) {
	k := ns + "/" + name
	r.record("delete EndpointSlice "+k, func() { delete(r.Slices, k) })
}

// UpsertNode implements state.Handler.
func (r *Recorder) UpsertNode(n *v1.Node) {
	r.record("upsert Node "+n.Name, func() { r.Nodes[n.Name] = n })
}

// DeleteNode implements state.Handler.
func (r *Recorder) DeleteNode(name string) {
	r.record("delete Node "+name, func() { delete(r.Nodes, name) })
}

// UpsertServiceCIDR implements state.ServiceCIDRHandler.
func (r *Recorder) UpsertServiceCIDR(sc *networkingv1.ServiceCIDR) {
	r.record("upsert ServiceCIDR "+sc.Name, func() { r.CIDRs[sc.Name] = sc })
}

// DeleteServiceCIDR implements state.ServiceCIDRHandler.
func (r *Recorder) DeleteServiceCIDR(name string) {
	r.record("delete ServiceCIDR "+name, func() { delete(r.CIDRs, name) })
}

// ServiceCIDR returns the current ServiceCIDR, or nil.
func (r *Recorder) ServiceCIDR(name string) *networkingv1.ServiceCIDR {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.CIDRs[name]
}

// TakeCalls returns the calls recorded since the last TakeCalls and forgets them.
func (r *Recorder) TakeCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// Keys lists the current objects as "Kind ns/name", sorted.
func (r *Recorder) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k := range r.Services {
		out = append(out, "Service "+k)
	}
	for k := range r.Slices {
		out = append(out, "EndpointSlice "+k)
	}
	for k := range r.Nodes {
		out = append(out, "Node "+k)
	}
	for k := range r.CIDRs {
		out = append(out, "ServiceCIDR "+k)
	}
	sort.Strings(out)
	return out
}

// Service returns the current Service ns/name, or nil.
func (r *Recorder) Service(key string) *v1.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Services[key]
}

// Slice returns the current EndpointSlice ns/name, or nil.
func (r *Recorder) Slice(key string) *discovery.EndpointSlice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Slices[key]
}

// Node returns the current Node, or nil.
func (r *Recorder) Node(name string) *v1.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Nodes[name]
}

// WaitFor waits up to timeout for cond to hold (it is checked after every call, and
// every 10ms for conditions that do not depend on calls) and fails the test with
// what if it never does.
func (r *Recorder) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-r.changed:
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s; objects now: %v", timeout, what, r.Keys())
		}
	}
}
