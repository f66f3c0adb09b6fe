package iptables

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// Config builds a Proxier. The registry fills it from dataplane.Options; tests fill
// it with fakes.
type Config struct {
	Runner Runner
	Render RenderConfig
	// NodePortAddresses is the config's nodePortAddresses (CIDRs or keywords).
	NodePortAddresses []string
	// LocalAddresses reads the node's interface addresses (nodeaddr.LocalAddresses).
	LocalAddresses func() ([]netip.Addr, error)
	Registerer     prometheus.Registerer
	Logger         *slog.Logger
}

// Proxier is the iptables mode's dataplane.Programmer: the core decides when to
// sync fully and runs conntrack cleanup and health checks.
type Proxier struct {
	c       Config
	metrics *metrics
	log     *slog.Logger

	mu sync.Mutex
	// applied is what the kernel holds for each ServicePort, as of the last
	// successful sync. Partial syncs diff against it instead of reading the kernel.
	applied map[state.ServicePortName]*ServiceRules
	// shared is the last full render without its Services: fixed chains, the
	// dispatch chains' layout and the jumps (Damaged compares the kernel with it
	// plus applied).
	shared Ruleset
	fixed  map[string]int // rules outside Service chains, by table
	render RenderConfig
	// endpoints is the sum of applied's endpoint counts, which decides
	// render.FoldRemote.
	endpoints int
	// synced is false until a full sync succeeded, and again after a failure.
	synced bool
}

var (
	_ dataplane.Programmer = (*Proxier)(nil)
	_ dataplane.Checker    = (*Proxier)(nil)
	_ dataplane.Bencher    = (*Proxier)(nil)
)

// NewProxier returns a Proxier whose first Apply must be a full one.
func NewProxier(c Config) *Proxier {
	if c.LocalAddresses == nil {
		c.LocalAddresses = nodeaddr.LocalAddresses
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("ipFamily", c.Render.family())
	return &Proxier{c: c, metrics: newMetrics(c.Registerer, c.Render.family()), log: log,
		applied: map[state.ServicePortName]*ServiceRules{}}
}

// renderConfig adds the node's NodePort addresses of this family to the static
// configuration.
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
	if !f.Primary && !f.Localhost && len(cfg.prefixes(f.CIDRs)) == 0 {
		// As kube-proxy: CIDRs of the other family only leave this family's
		// NodePorts on every local address.
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
	cfg.NodePortAddresses = append([]netip.Addr{}, cfg.addrs(addrs)...)
	return cfg, nil
}

// Apply brings the kernel to req.Snapshot. It writes only what differs from what
// the kernel holds: a partial sync touches only the changed ServicePorts; a full
// sync (asked by the core, or when the node changed: NodePort addresses) reads the
// kernel's tables and repairs whatever differs.
func (p *Proxier) Apply(ctx context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	full := req.Full || req.NodeChanged || !p.synced
	var written map[string]int
	var err error
	if full {
		written, err = p.fullSync(ctx, req)
	} else {
		full, written, err = p.partialSync(ctx, req)
	}
	if err != nil {
		p.synced = false
		p.metrics.restoreFailures.Inc()
		if !full {
			p.metrics.partialFailures.Inc()
		}
		return dataplane.Applied{}, err
	}
	a := p.stats(written)
	a.Full = full
	return a, nil
}

// Damaged implements dataplane.Checker: the canary chains and the jump into nat
// KUBE-SERVICES first (cheap, and what kube-proxy checks), then one iptables-save
// compared with what kproxy applied, so that any rule or jump changed behind its
// back (a flushed KUBE-SERVICES, a deleted OUTPUT jump, an edited KUBE-SVC chain)
// is found. It writes nothing; the full sync that follows writes only the
// differences.
func (p *Proxier) Damaged(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bad, err := p.canaryMissing(ctx); bad || err != nil {
		return true, err
	}
	if !p.synced {
		return true, nil
	}
	k, err := readKernel(ctx, p.c.Runner)
	if err != nil {
		return true, err
	}
	want := p.shared
	want.Services = p.applied
	if b := fullDiff(&want, k); !b.Empty() {
		p.log.Info("rules differ from what kproxy wrote", "tables", b.Written())
		return true, nil
	}
	return false, nil
}

func (p *Proxier) canaryMissing(ctx context.Context) (bool, error) {
	for _, t := range []string{tableMangle, tableNAT, tableFilter} {
		_, ok, err := p.c.Runner.ListChain(ctx, t, chainCanary)
		if err != nil {
			return true, err
		}
		if !ok {
			p.log.Info("canary chain missing", "table", t)
			return true, nil
		}
	}
	rules, _, err := p.c.Runner.ListChain(ctx, tableNAT, "PREROUTING")
	if err != nil {
		return true, err
	}
	if !hasJumpTo(rules, chainServices) {
		p.log.Info("jump to KUBE-SERVICES missing")
		return true, nil
	}
	return false, nil
}

func (p *Proxier) fullSync(ctx context.Context, req *dataplane.Request) (map[string]int, error) {
	cfg, err := p.renderConfig(req.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("iptables: nodePortAddresses: %w", err)
	}
	endpoints := snapshotEndpoints(req.Snapshot)
	cfg.FoldRemote = foldWanted(endpoints, p.render.FoldRemote)
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
	desired := RenderRequest(req, cfg)
	got := <-ch
	if got.err != nil {
		return nil, fmt.Errorf("iptables: %w", got.err)
	}
	b := fullDiff(desired, got.k)
	if err := p.restore(ctx, b); err != nil {
		return nil, err
	}
	p.applied = desired.Services
	p.shared = *desired
	p.shared.Services = nil
	if cfg.FoldRemote != p.render.FoldRemote {
		p.log.Info("endpoints on other nodes folded into the Service chains", "folded", cfg.FoldRemote, "endpoints", endpoints)
	}
	p.render = cfg
	p.endpoints = endpoints
	p.fixed = (&Ruleset{Fixed: desired.Fixed, Tail: desired.Tail}).RuleCounts()
	p.synced = true
	return b.Written(), nil
}

// partialSync rewrites the changed ports' chains; it reports whether it fell back
// to a full sync.
func (p *Proxier) partialSync(ctx context.Context, req *dataplane.Request) (bool, map[string]int, error) {
	endpoints := p.endpoints
	for n := range req.Changed {
		if sp, eps := req.Snapshot.Port(n); sp != nil {
			endpoints += len(eps)
		}
		if old := p.applied[n]; old != nil {
			endpoints -= old.endpoints
		}
	}
	if foldWanted(endpoints, p.render.FoldRemote) != p.render.FoldRemote {
		// Every Service's layout changes: a full sync rewrites the chains
		// that differ and removes the KUBE-SEP chains no longer wanted.
		w, err := p.fullSync(ctx, req)
		return true, w, err
	}
	rc := newRenderCtx(p.render)
	next := make(map[state.ServicePortName]*ServiceRules, len(req.Changed))
	for n := range req.Changed {
		if req.Snapshot.Service(n) != nil {
			next[n] = rc.serviceAfter(req, n, p.applied[n])
		} else {
			next[n] = nil
		}
	}
	b := partialDiff(p.applied, next)
	if p.tooManyDeletes(b) {
		// iptables-nft matches every -D against the whole chain: past a point,
		// rewriting the shared chains in a full sync is cheaper.
		w, err := p.fullSync(ctx, req)
		return true, w, err
	}
	if err := p.restore(ctx, b); err != nil {
		return false, nil, err
	}
	for n, r := range next {
		if r == nil {
			delete(p.applied, n)
		} else {
			p.applied[n] = r
		}
	}
	p.endpoints = endpoints
	return false, b.Written(), nil
}

func (p *Proxier) restore(ctx context.Context, b *restoreBuilder) error {
	if b.Empty() {
		return nil
	}
	if err := restoreWith(ctx, p.c.Runner, b); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

func (p *Proxier) stats(written map[string]int) dataplane.Applied {
	total := map[string]int{}
	for t, n := range p.fixed {
		total[t] += n
	}
	for _, s := range p.applied {
		s.ruleCount(total, 1)
	}
	p.metrics.record(total, written)
	return dataplane.Applied{Rules: total, Written: written}
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
