//go:build linux

package nftables

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// Proxier is the nftables mode's dataplane.Programmer.
type Proxier struct {
	log     *slog.Logger
	cfg     nodeConfig
	metrics *metrics
	tables  []*tableSync
	optKeys []string
	warned  map[string]bool
	// nsFD, when not 0, is the network namespace to program (tests).
	nsFD int
	// relay serves TCP NodePorts on loopback when nodePortAddresses names it
	// (kube-proxy 1.37's alpha localhost NodePorts); nil otherwise.
	relay *LocalhostRelay
	// lastSynced is the snapshot of the last successful sync, for List, which
	// runs on other goroutines.
	lastSynced atomic.Pointer[state.Snapshot]
	// localAddrs lists the node's interface addresses; a field so tests can fake it.
	localAddrs func() ([]netip.Addr, error)
	// gate is the self-check's generation gate (digest_linux.go).
	gate genGate
	// watch follows the namespace's nf_tables announcements (watch_linux.go);
	// nil when not running. noWatch turns it off (tests of the read-back).
	watch   *nftWatch
	noWatch bool
}

var (
	_ dataplane.Bencher    = (*Proxier)(nil)
	_ dataplane.Programmer = (*Proxier)(nil)
	_ dataplane.Checker    = (*Proxier)(nil)
)

// New builds the nftables dataplane; it fails when the kernel has no nf_tables.
func New(o dataplane.Options) (dataplane.Programmer, error) {
	p, err := newProxier(o)
	if err != nil {
		return nil, err
	}
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables mode: netlink: %w", err)
	}
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
		return nil, fmt.Errorf("nftables mode: the kernel does not answer nf_tables requests (load nf_tables, needs CAP_NET_ADMIN): %w", err)
	}
	if p.relay, err = NewLocalhostRelay(o.Config, o.Registerer, o.Log()); err != nil {
		return nil, fmt.Errorf("nftables mode: %w", err)
	}
	return p, nil
}

func newProxier(o dataplane.Options) (*Proxier, error) {
	cfg, err := configFrom(o)
	if err != nil {
		return nil, fmt.Errorf("nftables mode: %w", err)
	}
	return &Proxier{
		log: o.Log().With("mode", ModeName), cfg: cfg, metrics: newMetrics(o.Registerer),
		tables:     []*tableSync{newTableSync(familyIPv4), newTableSync(familyIPv6)},
		optKeys:    make([]string, 2),
		warned:     map[string]bool{},
		localAddrs: nodeaddr.LocalAddresses,
	}, nil
}

// renderOptions resolves the per-family render options of this sync.
func (p *Proxier) renderOptions(snap *state.Snapshot) ([]renderOptions, error) {
	var npIPs []netip.Addr
	if len(p.cfg.nodePortAddresses) > 0 {
		local, err := p.localAddrs()
		if err != nil {
			return nil, fmt.Errorf("list node addresses: %w", err)
		}
		npIPs, err = nodeaddr.Select(nodeaddr.Options{NodeAddresses: snap.Node.Addresses,
			LocalAddresses: local, NodePortAddresses: p.cfg.nodePortAddresses})
		if err != nil {
			return nil, err
		}
		if npIPs == nil {
			npIPs = []netip.Addr{}
		}
	}
	return p.cfg.families(npIPs, snap.ServiceCIDRs), nil
}

// Apply implements dataplane.Programmer: each family's table is synced with one
// transaction, of element-level differences unless req.Full (or the render options
// changed: node addresses).
func (p *Proxier) Apply(ctx context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	st := dataplane.Applied{Rules: map[string]int{}, Written: map[string]int{}}
	opts, err := p.renderOptions(req.Snapshot)
	if err != nil {
		p.metrics.syncFailures.Inc()
		return st, fmt.Errorf("nftables sync: %w", err)
	}
	// kproxy's own commits are not announced to its watch: with nobody listening
	// the kernel builds no notification of each element (a cold full sync of
	// 10,000 Services took 1.6x the CPU with the watch reading them). The gate
	// accounts for these commits; the watch restarts at g1 (a commit by anyone
	// in the meantime leaves it behind the gate: the next check reads back).
	p.watch.close()
	p.watch = nil
	g0, gerr := p.generation()
	commits, allFull := 0, true
	var errs []error
	for i, t := range p.tables {
		before := t.commits
		full, written, err := p.syncTable(i, t, opts[i], req)
		commits += t.commits - before
		allFull = allFull && full
		st.Full = st.Full || full
		st.Written[t.fam.name] = written
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.Rules[t.fam.name] = t.applied.ruleCount()
	}
	g1, gerr1 := p.generation()
	p.afterApply(g0, g1, commits, allFull, len(errs) == 0 && gerr == nil && gerr1 == nil)
	p.watchTables()
	if len(errs) > 0 {
		p.metrics.syncFailures.Inc()
		return st, errors.Join(errs...)
	}
	p.lastSynced.Store(req.Snapshot)
	if err := p.relay.Update(req); err != nil {
		p.log.Warn("localhost NodePort relay", "err", err)
	}
	return st, nil
}

func (p *Proxier) syncTable(i int, t *tableSync, o renderOptions, req *dataplane.Request) (bool, int, error) {
	if req.Full || t.applied == nil || p.optKeys[i] != o.key() {
		written, err := p.fullTable(i, t, o, req)
		return true, written, err
	}
	snap := req.Snapshot
	updated := make([]update, 0, len(req.Changed))
	changes := make([]change, 0, len(req.Changed)+1)
	for n := range req.Changed {
		var fr *fragment
		var delta *elemDelta
		old := t.oldFragment(n)
		if sp := snap.Service(n); sp != nil {
			fr, delta = renderServiceUpdate(o, old, sp, req.Endpoints(n))
			p.warn(fr)
		}
		updated = append(updated, update{name: n, old: old, new: fr})
		changes = append(changes, change{old: old, new: fr, elems: delta})
	}
	// The node fragment (base, dispatch and pick chains, shared sets) depends on
	// o only; with the same key, only its ServiceCIDR elements can differ.
	node := t.applied.node
	if !serviceCIDRsRendered(o, node) {
		node = renderNode(o)
		changes = append(changes, change{old: t.applied.node, new: node})
	}
	written, err := t.partial(foldServices(t.applied, node, updated), changes)
	if err == nil {
		t.snap, t.opts = snap, o
	}
	if errors.Is(err, unix.ENFILE) {
		// A shared verdict map is full (see verdictMapSize): a full sync declares it larger.
		fw, err := p.fullTable(i, t, o, req)
		return true, written + fw, err
	}
	return false, written, err
}

// fullTable replaces table i with a fresh render of req.
func (p *Proxier) fullTable(i int, t *tableSync, o renderOptions, req *dataplane.Request) (int, error) {
	// The old model goes before the new one is rendered: a periodic full
	// sync would otherwise hold both (full forgets it anyway).
	t.forget()
	written, err := t.full(o, req, p.warn)
	if err == nil {
		p.optKeys[i] = o.key()
	}
	return written, err
}

// warn logs fr's warnings, each once.
func (p *Proxier) warn(fr *fragment) {
	for _, w := range fr.warnings {
		if !p.warned[w] {
			p.warned[w] = true
			p.log.Warn(w)
		}
	}
}

// Cleanup implements dataplane.Programmer: the localhost relay's listeners and
// both tables go.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.watch.close()
	p.watch = nil
	for _, t := range p.tables {
		t.applied = nil
		t.closeConn()
	}
	return errors.Join(p.relay.Close(ctx), p.deleteTables())
}

// deleteTables removes both of kproxy's tables; missing tables are fine.
func deleteTables(nsFD int) error {
	var errs []error
	for _, f := range []family{familyIPv4, familyIPv6} {
		b, err := newBatch(f, nsFD)
		if err != nil {
			return err
		}
		b.resetTable() // creates the table if missing, so the delete cannot fail
		b.conn.DelTable(b.table)
		if err := b.commit(); err != nil {
			errs = append(errs, err)
		}
		_ = b.conn.CloseLasting()
	}
	return errors.Join(errs...)
}

// Render implements dataplane.Bencher: the full render of both tables, no kernel.
func (p *Proxier) Render(snap *state.Snapshot) (int, error) {
	opts, err := p.renderOptionsPure(snap)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range opts {
		n += renderAll(o, dataplane.NewRequest(snap)).ruleCount()
	}
	return n, nil
}

// renderOptionsPure is renderOptions without reading interfaces: nodePortAddresses
// are resolved against the Node object's addresses only.
func (p *Proxier) renderOptionsPure(snap *state.Snapshot) ([]renderOptions, error) {
	var npIPs []netip.Addr
	if len(p.cfg.nodePortAddresses) > 0 {
		var err error
		npIPs, err = nodeaddr.Select(nodeaddr.Options{NodeAddresses: snap.Node.Addresses, NodePortAddresses: p.cfg.nodePortAddresses})
		if err != nil {
			return nil, err
		}
		if npIPs == nil {
			npIPs = []netip.Addr{}
		}
	}
	return p.cfg.families(npIPs, snap.ServiceCIDRs), nil
}

// BaselineApply implements dataplane.Bencher: the same ruleset loaded with one plain
// `nft -f` per table.
func (p *Proxier) BaselineApply(ctx context.Context, snap *state.Snapshot) (time.Duration, error) {
	opts, err := p.renderOptionsPure(snap)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, o := range opts {
		script := scriptText(renderAll(o, dataplane.NewRequest(snap)))
		start := time.Now()
		cmd := exec.CommandContext(ctx, "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("nft -f (%s): %w: %s", o.fam.table(), err, firstLines(string(out), 5))
		}
		total += time.Since(start)
	}
	return total, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// useNetns points every kernel access at the network namespace fd (tests).
func (p *Proxier) useNetns(fd int) {
	p.nsFD = fd
	for _, t := range p.tables {
		t.nsFD = fd
	}
}
