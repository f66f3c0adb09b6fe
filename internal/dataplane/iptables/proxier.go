package iptables

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/healthcheck"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// Config builds a Proxier. The registry fills it from dataplane.Options; tests fill
// it with fakes.
type Config struct {
	Runner Runner
	// Conntrack deletes stale UDP flows; nil skips the cleanup.
	Conntrack conntrack.Deleter
	// Health serves health-check node ports; nil serves none.
	Health *healthcheck.Server
	Render RenderConfig
	// NodePortAddresses is the config's nodePortAddresses (CIDRs or keywords).
	NodePortAddresses []string
	// LocalAddresses reads the node's interface addresses (nodeaddr.LocalAddresses).
	LocalAddresses func() ([]netip.Addr, error)
	// FullSyncPeriod forces a full sync this often (default 1h); CanaryInterval is
	// how often the canary chains are checked (default 30s, the syncPeriod).
	FullSyncPeriod time.Duration
	CanaryInterval time.Duration
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Proxier is the iptables dataplane.
type Proxier struct {
	c       Config
	metrics *metrics
	log     *slog.Logger

	mu sync.Mutex
	// applied is what the kernel holds for each ServicePort, as of the last
	// successful sync. Partial syncs diff against it instead of reading the kernel.
	applied   map[state.ServicePortName]*ServiceRules
	fixed     map[string]int // rules outside Service chains, by table
	render    RenderConfig
	needFull  bool
	lastFull  time.Time
	lastCheck time.Time
	prev      *state.Snapshot
	// pending collects the changes of failed syncs, so the conntrack cleanup after
	// the next successful one still covers them.
	pending map[state.ServicePortName]struct{}
}

var (
	_ dataplane.Dataplane = (*Proxier)(nil)
	_ dataplane.Bencher   = (*Proxier)(nil)
)

// NewProxier returns a Proxier whose first Sync is a full one.
func NewProxier(c Config) *Proxier {
	if c.FullSyncPeriod <= 0 {
		c.FullSyncPeriod = time.Hour
	}
	if c.CanaryInterval <= 0 {
		c.CanaryInterval = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LocalAddresses == nil {
		c.LocalAddresses = nodeaddr.LocalAddresses
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Proxier{c: c, metrics: newMetrics(c.Registerer), log: log, needFull: true,
		applied: map[state.ServicePortName]*ServiceRules{}, pending: map[state.ServicePortName]struct{}{}}
}

// renderConfig adds the node's NodePort addresses to the static configuration.
func (p *Proxier) renderConfig(snap *state.Snapshot) (RenderConfig, error) {
	cfg := p.c.Render
	cfg.NodePortAddresses = nil
	f, err := nodeaddr.Parse(p.c.NodePortAddresses)
	if err != nil {
		return cfg, err
	}
	if len(p.c.NodePortAddresses) == 0 || f.All {
		return cfg, nil
	}
	local, err := p.c.LocalAddresses()
	if err != nil {
		return cfg, err
	}
	addrs, err := nodeaddr.Select(nodeaddr.Options{NodeAddresses: snap.Node.Addresses, LocalAddresses: local, NodePortAddresses: p.c.NodePortAddresses})
	if err != nil {
		return cfg, err
	}
	cfg.NodePortAddresses = append([]netip.Addr{}, addrs...)
	return cfg, nil
}

// Sync brings the kernel to snap. It writes only what differs from what the kernel
// holds: a partial sync touches only the ServicePorts in changed; a full sync (first
// sync, after a failure, when a canary chain vanished, on node changes, and every
// FullSyncPeriod) reads the kernel's tables and repairs whatever differs.
func (p *Proxier) Sync(ctx context.Context, snap *state.Snapshot, changed state.ChangeSet) (dataplane.SyncStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := range changed.Ports {
		p.pending[n] = struct{}{}
	}
	full := p.needFull || changed.NodeChanged || p.c.Now().Sub(p.lastFull) >= p.c.FullSyncPeriod
	// The runner syncs at least every syncPeriod, and those periodic syncs come with
	// no changes: check the canaries then, so flushed rules return within syncPeriod.
	if !full && (changed.Empty() || p.c.Now().Sub(p.lastCheck) >= p.c.CanaryInterval) {
		full = p.canaryMissing(ctx)
	}
	var stats dataplane.SyncStats
	var err error
	if full {
		stats, err = p.fullSync(ctx, snap)
	} else {
		stats, err = p.partialSync(ctx, snap, changed)
	}
	if err != nil {
		p.needFull = true
		p.metrics.restoreFailures.Inc()
		if !full {
			p.metrics.partialFailures.Inc()
		}
		return stats, err
	}
	p.afterSync(snap, full)
	return stats, nil
}

// canaryMissing checks the canary chains, which disappear when someone deletes the
// tables' chains, and the jump into nat KUBE-SERVICES, which a plain flush
// (`iptables -t nat -F`) removes while the empty canary survives.
func (p *Proxier) canaryMissing(ctx context.Context) bool {
	p.lastCheck = p.c.Now()
	for _, t := range []string{tableMangle, tableNAT, tableFilter} {
		_, ok, err := p.c.Runner.ListChain(ctx, t, chainCanary)
		if err != nil || !ok {
			p.log.Info("canary chain missing: full sync", "table", t, "err", err)
			return true
		}
	}
	rules, _, err := p.c.Runner.ListChain(ctx, tableNAT, "PREROUTING")
	if err != nil || !hasJumpTo(rules, chainServices) {
		p.log.Info("jump to KUBE-SERVICES missing: full sync", "err", err)
		return true
	}
	return false
}

func (p *Proxier) fullSync(ctx context.Context, snap *state.Snapshot) (dataplane.SyncStats, error) {
	cfg, err := p.renderConfig(snap)
	if err != nil {
		return dataplane.SyncStats{Full: true}, fmt.Errorf("iptables: nodePortAddresses: %w", err)
	}
	// Read the kernel while rendering: one is iptables-save's work, the other ours.
	type saved struct {
		k   kernelState
		err error
	}
	ch := make(chan saved, 1)
	go func() {
		k, err := readKernel(ctx, p.c.Runner)
		ch <- saved{k, err}
	}()
	desired := Render(snap, cfg)
	got := <-ch
	if got.err != nil {
		return dataplane.SyncStats{Full: true}, fmt.Errorf("iptables: %w", got.err)
	}
	b := fullDiff(desired, got.k)
	if err := p.restore(ctx, b); err != nil {
		return dataplane.SyncStats{Full: true}, err
	}
	p.applied = desired.Services
	p.render = cfg
	p.fixed = (&Ruleset{Fixed: desired.Fixed, Tail: desired.Tail}).RuleCounts()
	now := p.c.Now()
	p.needFull, p.lastFull, p.lastCheck = false, now, now
	return p.stats(true, b.Written()), nil
}

func (p *Proxier) partialSync(ctx context.Context, snap *state.Snapshot, changed state.ChangeSet) (dataplane.SyncStats, error) {
	rc := newRenderCtx(p.render)
	next := make(map[state.ServicePortName]*ServiceRules, len(changed.Ports))
	for n := range changed.Ports {
		if snap.Services[n] != nil {
			next[n] = rc.service(snap, n)
		} else {
			next[n] = nil
		}
	}
	b := partialDiff(p.applied, next)
	if p.tooManyDeletes(b) {
		// iptables-nft matches every -D against the whole chain: past a point,
		// rewriting the shared chains in a full sync is cheaper.
		return p.fullSync(ctx, snap)
	}
	if err := p.restore(ctx, b); err != nil {
		return dataplane.SyncStats{}, err
	}
	for n, r := range next {
		if r == nil {
			delete(p.applied, n)
		} else {
			p.applied[n] = r
		}
	}
	return p.stats(false, b.Written()), nil
}

func (p *Proxier) restore(ctx context.Context, b *restoreBuilder) error {
	if b.Empty() {
		return nil
	}
	if err := p.c.Runner.Restore(ctx, b.Bytes(), true); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

func (p *Proxier) stats(full bool, written map[string]int) dataplane.SyncStats {
	total := map[string]int{}
	for t, n := range p.fixed {
		total[t] += n
	}
	noLocal := map[string]int{"internal": 0, "external": 0}
	for _, s := range p.applied {
		s.ruleCount(total, 1)
		for _, pol := range s.NoLocal {
			noLocal[pol]++
		}
	}
	p.metrics.record(total, written)
	return dataplane.SyncStats{Full: full, Rules: total, Written: written, NoLocalEndpoints: noLocal}
}

// afterSync runs what follows a successful sync: health-check ports and conntrack.
func (p *Proxier) afterSync(snap *state.Snapshot, full bool) {
	if err := p.c.Health.Refresh(p.prev, snap, p.pending, full); err != nil {
		p.log.Warn("health-check node ports", "err", err)
	}
	if p.c.Conntrack != nil && p.prev != nil {
		stale := state.StaleUDPEndpoints(p.prev, snap, state.ChangeSet{Ports: p.pending})
		filters := append(conntrack.FiltersFor(stale), conntrack.FiltersForNewlyServed(newlyServed(p.prev, snap, p.pending))...)
		if n, err := conntrack.Clean(p.c.Conntrack, filters); err != nil {
			p.log.Warn("conntrack cleanup", "err", err)
		} else if n > 0 {
			p.log.Info("deleted stale UDP conntrack entries", "count", n)
		}
	}
	p.prev = snap
	p.pending = map[state.ServicePortName]struct{}{}
}

// newlyServed lists the changed UDP/SCTP ports that had no endpoint in prev and have
// one now. Upstream forgets their flows too: a flow the kernel tracked while the port
// had no endpoint (e.g. created before any rule existed) is not NATed and would stay
// black-holed until it times out.
func newlyServed(prev, cur *state.Snapshot, changed map[state.ServicePortName]struct{}) []*state.ServicePort {
	var out []*state.ServicePort
	for n := range changed {
		sp := cur.Services[n]
		if sp == nil || sp.Protocol == "TCP" || len(cur.Categorize(n).AllReachable) == 0 {
			continue
		}
		if prev.Services[n] == nil || len(prev.Categorize(n).AllReachable) == 0 {
			out = append(out, sp)
		}
	}
	return out
}

// readKernel reads the tables kproxy writes in one iptables-save call.
func readKernel(ctx context.Context, r Runner) (kernelState, error) {
	out, err := r.Save(ctx, "")
	if err != nil {
		return nil, err
	}
	return parseSave(out), nil
}

// tooManyDeletes reports whether a partial restore would delete more than a quarter
// of the shared chains' rules (and more than 64).
func (p *Proxier) tooManyDeletes(b *restoreBuilder) bool {
	deletes := 0
	for _, s := range b.sections {
		deletes += len(s.deletes)
	}
	if deletes <= 64 {
		return false
	}
	total := 0
	for _, s := range p.applied {
		total += len(s.Dispatch)
	}
	return deletes > total/4
}
