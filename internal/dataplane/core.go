package dataplane

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/healthcheck"
	"kproxy.dev/kproxy/internal/state"
)

// Programmer is what a mode supplies to the core: it turns the core's request into
// kernel state (or listeners) and removes it again. Everything every mode must do
// the same way (when to sync fully, endpoint categorisation, what a Node change
// invalidates, conntrack cleanup, health-check node ports, no-local-endpoint counts)
// is the core's.
type Programmer interface {
	// Apply makes the dataplane match req.Snapshot. When req.Full is set it
	// reconciles everything against what the kernel holds; otherwise it looks only
	// at req.Changed. It returns the rule counts for metrics. A *PartialError means
	// every other Service was programmed and the mode retries the failed ones in
	// its later Applies by itself.
	Apply(ctx context.Context, req *Request) (Applied, error)
	// Cleanup removes everything the mode ever programmed.
	Cleanup(ctx context.Context) error
}

// Checker is implemented by modes that can tell, cheaply, whether their kernel
// state was changed behind their back (a flushed chain, a deleted map element).
// The core asks every CheckInterval and makes the next sync a full one when it was.
type Checker interface {
	Damaged(ctx context.Context) (bool, error)
}

// Applied is what one Apply wrote and what the mode now owns, by table.
type Applied struct {
	// Full is set when the mode rewrote everything on its own (e.g. because a
	// partial sync would have cost more).
	Full    bool
	Rules   map[string]int
	Written map[string]int
}

// CoreOptions configure a Core.
type CoreOptions struct {
	// Health serves the health-check node ports; nil serves none.
	Health *healthcheck.Server
	// Conntrack deletes stale flows after each sync; nil for modes without kernel NAT.
	Conntrack conntrack.Deleter
	// FullSyncPeriod forces a full sync this often (kube-proxy's FullSyncPeriod, 1h).
	FullSyncPeriod time.Duration
	// CheckInterval is how often a Checker mode is asked whether its state was
	// damaged (the syncPeriod, default 30s).
	CheckInterval time.Duration
	// Reconciler, when set, deletes every ReconcilePeriod the stale UDP flows the
	// cleanup after each sync missed (kube-proxy 1.33+'s conntrack reconciler);
	// its Snapshot is the core's last synced one. RunReconciler runs it.
	Reconciler      *conntrack.Reconciler
	ReconcilePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultFullSyncPeriod is kube-proxy's forced full resync interval.
const DefaultFullSyncPeriod = time.Hour

// Core is the proxier lifecycle written once for every mode. It implements
// Dataplane; the daemon, `kproxy bench` and the tests drive a mode through it.
type Core struct {
	p   Programmer
	o   CoreOptions
	log *slog.Logger

	// prev is the snapshot of the last successful sync, nil before the first.
	prev *state.Snapshot
	// pending collects the ports changed since prev; a failed sync keeps them.
	pending     map[state.ServicePortName]struct{}
	pendingNode bool
	// pendingCIDRs: the ServiceCIDRs changed since prev (Request.CIDRsChanged).
	pendingCIDRs bool
	needFull     bool
	// retry is set after a PartialError: the mode retries its failed Services
	// on the next Apply, so the next Sync is not skipped even with no change.
	retry     bool
	lastFull  time.Time
	lastCheck time.Time
	// noLocal flags the ports with a Local policy and no local endpoint.
	noLocal map[state.ServicePortName]noLocal
	// synced is prev for readers on other goroutines (the reconciler).
	synced atomic.Pointer[state.Snapshot]
}

// NewCore wraps a mode's Programmer; the first Sync is a full one.
func NewCore(p Programmer, o CoreOptions) *Core {
	if o.FullSyncPeriod <= 0 {
		o.FullSyncPeriod = DefaultFullSyncPeriod
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Core{p: p, o: o, log: log, needFull: true,
		pending: map[state.ServicePortName]struct{}{}, noLocal: map[state.ServicePortName]noLocal{}}
}

// Programmer returns the mode the core drives (for its optional interfaces).
func (c *Core) Programmer() Programmer { return c.p }

// Sync implements Dataplane. With nothing changed, nothing damaged and the full
// sync period not over it does nothing and reports Skipped: an idle node syncs
// once an hour, as kube-proxy's does.
func (c *Core) Sync(ctx context.Context, snap *state.Snapshot, changed state.ChangeSet) (SyncStats, error) {
	for n := range changed.Ports {
		c.pending[n] = struct{}{}
	}
	c.pendingNode = c.pendingNode || changed.NodeChanged
	c.pendingCIDRs = c.pendingCIDRs || changed.CIDRsChanged
	req := c.request(ctx, snap)
	if req == nil {
		return SyncStats{Skipped: true}, nil
	}
	applied, err := c.apply(ctx, req)
	stats := SyncStats{Full: req.Full || applied.Full, Rules: applied.Rules, Written: applied.Written}
	if err != nil && !IsPartial(err) {
		c.needFull = true
		return stats, err
	}
	c.afterSync(req)
	c.retry = err != nil
	stats.NoLocalEndpoints = c.noLocalCounts()
	return stats, err
}

// LargePortEndpoints is the endpoint count from which a changed port counts as
// large: a partial sync applies it after the other changed ports, so a small
// change that arrived in the same batch as a change to a Service of 10,000 or
// 100,000 endpoints reaches the kernel without waiting for that Service's render
// and apply.
const LargePortEndpoints = 1000

// apply hands req to the mode: in two Applies when it is a partial sync whose
// changed ports include both large and small ones (small first), else in one.
// Node and ServiceCIDR changes and full syncs are never split: they are
// node-wide.
func (c *Core) apply(ctx context.Context, req *Request) (Applied, error) {
	if req.Full || req.NodeChanged || req.CIDRsChanged {
		return c.p.Apply(ctx, req)
	}
	small, large := splitLarge(req.Snapshot, c.prev, req.Changed)
	if len(small) == 0 || len(large) == 0 {
		return c.p.Apply(ctx, req)
	}
	first := &Request{Snapshot: req.Snapshot}
	first.Changed = small
	a1, err1 := c.p.Apply(ctx, first)
	if err1 != nil && !IsPartial(err1) {
		return a1, err1
	}
	second := &Request{Snapshot: req.Snapshot}
	second.Changed = large
	a2, err2 := c.p.Apply(ctx, second)
	a2.Full = a2.Full || a1.Full
	a2.Written = addCounts(a1.Written, a2.Written)
	if err2 != nil && !IsPartial(err2) {
		return a2, err2
	}
	return a2, joinPartial(err1, err2)
}

// splitLarge separates the changed ports with at least LargePortEndpoints
// endpoints, now or in the previous sync (a shrinking Service is as slow to
// rewrite), from the others.
func splitLarge(snap, prev *state.Snapshot, changed map[state.ServicePortName]struct{}) (small, large map[state.ServicePortName]struct{}) {
	small = make(map[state.ServicePortName]struct{}, len(changed))
	large = map[state.ServicePortName]struct{}{}
	for n := range changed {
		size := len(snap.EndpointsOf(n))
		if prev != nil {
			size = max(size, len(prev.EndpointsOf(n)))
		}
		if size >= LargePortEndpoints {
			large[n] = struct{}{}
		} else {
			small[n] = struct{}{}
		}
	}
	return small, large
}

func addCounts(a, b map[string]int) map[string]int {
	if len(a) == 0 {
		return b
	}
	out := make(map[string]int, len(a)+len(b))
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// joinPartial merges the PartialErrors (or nils) of the two Applies of a split sync.
func joinPartial(a, b error) error {
	var errs []error
	for _, e := range []error{a, b} {
		if pe, ok := e.(*PartialError); ok && pe != nil {
			errs = append(errs, pe.Errs...)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &PartialError{Errs: errs}
}

// request decides what this sync must do, or returns nil when nothing.
func (c *Core) request(ctx context.Context, snap *state.Snapshot) *Request {
	now := c.o.Now()
	full := c.needFull || now.Sub(c.lastFull) >= c.o.FullSyncPeriod
	if !full && (len(c.pending) == 0 && !c.pendingNode && !c.pendingCIDRs || now.Sub(c.lastCheck) >= c.o.CheckInterval) {
		full = c.damaged(ctx, now)
	}
	if !full && len(c.pending) == 0 && !c.pendingNode && !c.pendingCIDRs && !c.retry {
		return nil
	}
	changed := c.pending
	if c.pendingNode {
		// The node's labels and addresses feed every port's categorisation
		// (topology, locality) and NodePort addresses: every port is changed.
		changed = c.allPorts(snap)
	}
	req := &Request{Snapshot: snap, Full: full}
	req.NodeChanged, req.CIDRsChanged, req.Changed = c.pendingNode, c.pendingCIDRs, changed
	return req
}

// damaged asks a Checker mode whether its kernel state is still what it wrote.
func (c *Core) damaged(ctx context.Context, now time.Time) bool {
	ch, ok := c.p.(Checker)
	if !ok || c.prev == nil {
		return false
	}
	c.lastCheck = now
	bad, err := ch.Damaged(ctx)
	switch {
	case err != nil:
		c.log.Warn("cannot check the kernel's rules; syncing fully", "err", err)
		return true
	case bad:
		c.log.Warn("rules were changed outside kproxy; repairing with a full sync")
		return true
	}
	return false
}

// allPorts names every port of snap and of the previous sync.
func (c *Core) allPorts(snap *state.Snapshot) map[state.ServicePortName]struct{} {
	out := make(map[state.ServicePortName]struct{}, snap.Len())
	for n := range snap.All() {
		out[n] = struct{}{}
	}
	if c.prev != nil {
		for n := range c.prev.All() {
			out[n] = struct{}{}
		}
	}
	for n := range c.pending {
		out[n] = struct{}{}
	}
	return out
}

// afterSync runs what follows every successful sync, in every mode: health-check
// node ports, conntrack cleanup (only now is no new flow sent to a removed
// endpoint), the no-local-endpoint flags.
func (c *Core) afterSync(req *Request) {
	snap := req.Snapshot
	if err := c.o.Health.Refresh(c.prev, snap, req.Changed, req.Full || req.NodeChanged); err != nil {
		c.log.Warn("health-check node ports", "err", err)
	}
	c.cleanConntrack(req)
	c.updateNoLocal(req)
	now := c.o.Now()
	if req.Full {
		c.needFull, c.lastFull, c.lastCheck = false, now, now
	}
	c.prev = snap
	c.synced.Store(snap)
	c.pending = map[state.ServicePortName]struct{}{}
	c.pendingNode = false
	c.pendingCIDRs = false
}

// RunReconciler runs the conntrack reconciler, if any, until ctx ends.
func (c *Core) RunReconciler(ctx context.Context) {
	r := c.o.Reconciler
	if r == nil {
		return
	}
	r.Snapshot = c.synced.Load
	period := c.o.ReconcilePeriod
	if period <= 0 {
		period = c.o.CheckInterval
	}
	r.Run(ctx, period)
}

// Invalidate makes the next Sync a full one, whatever changed: for callers that
// changed the kernel's state themselves (bench baselines, tests).
func (c *Core) Invalidate() { c.needFull = true }

// Cleanup closes the health-check ports and removes what the mode programmed.
func (c *Core) Cleanup(ctx context.Context) error {
	c.o.Health.Close()
	c.prev = nil
	c.needFull = true
	return c.p.Cleanup(ctx)
}

// As returns dp, or the mode a Core drives, as T when it implements T: the way to
// reach a mode's optional interfaces (Lister, Drainer, Bencher) through the core.
func As[T any](dp Dataplane) (T, bool) {
	if t, ok := dp.(T); ok {
		return t, true
	}
	if c, ok := dp.(*Core); ok {
		t, ok := c.p.(T)
		return t, ok
	}
	var zero T
	return zero, false
}
