//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// DummyLink is the link every Service address is made local through (a local
// route, not an interface address).
const DummyLink = "kube-ipvs0"

// proxierOptions are the node settings the proxier needs, taken from the config.
type proxierOptions struct {
	Scheduler         string
	MasqueradeAll     bool
	MasqueradeBit     int
	ClusterCIDRs      []netip.Prefix
	NodePortAddresses []string
	ExcludeCIDRs      []netip.Prefix
	// GracefulTimeout bounds how long a removed TCP real server is kept at weight 0
	// while it still has connections.
	GracefulTimeout time.Duration
	// GracefulInterval is how often draining real servers are checked.
	GracefulInterval time.Duration
	Log              *slog.Logger
}

// Proxier is the IPVS dataplane.
type Proxier struct {
	mu  sync.Mutex
	k   Kernel
	o   proxierOptions
	log *slog.Logger

	// What the last syncs programmed, keyed the way diffs need it.
	ports   map[state.ServicePortName]*portModel
	servers map[vsKey]*virtualServer
	addrs   map[netip.Addr]int
	sets    setModel
	// counts is the number of entries of each set in sets; maxElem the maxelem
	// of each hash set in the kernel, as last read or written (setsize.go).
	counts  map[string]int
	maxElem map[string]int
	// growLogged is the maxelem each set last failed to grow to, logged once.
	growLogged map[string]int
	rules      [2]string // the iptables text applied per family (v4, v6)
	ready      [2]bool   // sets and rules of the family are in place

	nodePortAddrs []netip.Addr
	// lacking are IPVS schedulers the kernel refused (lacking.go).
	lacking  map[string]bool
	needFull bool

	graceful *graceful
	written  int
	// objects counts the kernel's virtual and real servers (draining ones too),
	// kept up to date by every write so that stats cost nothing per sync.
	objects int
}

func newProxier(k Kernel, o proxierOptions) *Proxier {
	if o.GracefulTimeout == 0 {
		o.GracefulTimeout = 15 * time.Minute
	}
	if o.GracefulInterval == 0 {
		o.GracefulInterval = 5 * time.Second
	}
	if o.MasqueradeBit == 0 {
		o.MasqueradeBit = defaultMasqueradeBit
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	p := &Proxier{k: k, o: o, log: o.Log, needFull: true, growLogged: map[string]int{}}
	p.reset()
	p.graceful = newGraceful(p)
	return p
}

func (p *Proxier) reset() {
	p.ports = map[state.ServicePortName]*portModel{}
	p.servers = map[vsKey]*virtualServer{}
	p.addrs = map[netip.Addr]int{}
	p.sets = setModel{}
	p.counts = map[string]int{}
	p.maxElem = map[string]int{}
	p.rules = [2]string{}
	p.objects = 0
}

// Apply makes the kernel match req.Snapshot, touching only what changed: the
// ports in req.Changed, or everything against what the kernel reports when req.Full.
func (p *Proxier) Apply(ctx context.Context, req *dataplane.Request) (applied dataplane.Applied, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = 0
	full := p.needFull || req.Full
	if full {
		err = p.fullSync(ctx, req)
	} else {
		err = p.incrementalSync(ctx, req)
	}
	if err != nil {
		p.needFull = true
		return p.stats(full), err
	}
	p.needFull = false
	p.log.Debug("ipvs: synced", "full", full, "changedPorts", len(req.Changed), "written", p.written, "objects", p.objects)
	p.graceful.process()
	return p.stats(full), nil
}

func (p *Proxier) stats(full bool) dataplane.Applied {
	return dataplane.Applied{
		Full:    full,
		Rules:   map[string]int{"ipvs": p.objects, "ipset": len(p.sets)},
		Written: map[string]int{"ipvs": p.written},
	}
}

// incrementalSync re-renders the changed ServicePorts and applies the difference to
// the previous render of each: O(changes).
func (p *Proxier) incrementalSync(ctx context.Context, req *dataplane.Request) error {
	if req.NodeChanged {
		// The core lists every port as changed: categorisation (zone, locality)
		// and NodePort addresses depend on the node.
		if err := p.refreshNodePortAddrs(req.Snapshot); err != nil {
			return err
		}
	}
	var d setDiff
	var errs []error
	for name := range req.Changed {
		if err := p.syncPort(ctx, req, name, &d); err != nil {
			errs = append(errs, err)
		}
	}
	if !d.empty() {
		d.count(p.counts)
		errs = append(errs, p.applySets(ctx, d))
	}
	return errors.Join(errs...)
}

// syncPort applies one ServicePort's new render against its previous one.
func (p *Proxier) syncPort(ctx context.Context, req *dataplane.Request, name state.ServicePortName, d *setDiff) error {
	old := p.ports[name]
	var cur *portModel
	if sp := req.Snapshot.Service(name); sp != nil {
		m, err := renderPort(sp, req.Endpoints(name), p.renderOptions())
		if err != nil {
			// Bad input keeps the last good state serving.
			p.log.Error("ipvs: not syncing service port", "service", name.String(), "err", err)
			return nil
		}
		p.logWarnings(&m)
		cur = &m
		if err := p.ensureFamilies(ctx, cur); err != nil {
			return err
		}
	}
	if err := p.applyPort(old, cur); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	// Count the new entries before dropping the old ones, so that an entry both
	// renders contain is never deleted and re-added (a window in which
	// KUBE-IPVS-FILTER would reject new connections to the Service).
	if cur != nil {
		p.sets.apply(cur.Sets, +1, d)
		p.ports[name] = cur
	} else {
		delete(p.ports, name)
	}
	if old != nil {
		p.sets.apply(old.Sets, -1, d)
	}
	return nil
}

func (p *Proxier) logWarnings(m *portModel) {
	for _, w := range m.Warnings {
		p.log.Warn("ipvs: " + w)
	}
}

func (p *Proxier) renderOptions() renderOptions {
	return renderOptions{DefaultScheduler: p.o.Scheduler, NodePortAddrs: p.nodePortAddrs, Lacking: p.lacking}
}

// applyPort programs the virtual servers and addresses of cur where they differ
// from old. Addresses are bound before virtual servers use them and unbound after.
func (p *Proxier) applyPort(old, cur *portModel) error {
	if cur != nil {
		for _, a := range cur.Addrs {
			if err := p.refAddr(a, +1); err != nil {
				return err
			}
		}
	}
	want := map[vsKey]*virtualServer{}
	if cur != nil {
		for _, vs := range cur.Servers {
			want[vs.Key] = vs
		}
	}
	var errs []error
	for _, vs := range want {
		if err := p.applyServer(vs.Key, vs); err != nil {
			errs = append(errs, err)
		}
	}
	if old != nil {
		for _, vs := range old.Servers {
			if want[vs.Key] == nil {
				if err := p.applyServer(vs.Key, nil); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for _, a := range old.Addrs {
			if err := p.refAddr(a, -1); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// refAddr counts the users of a Service address, routing it through kube-ipvs0
// (a local route) on the first and removing the route after the last.
func (p *Proxier) refAddr(a netip.Addr, delta int) error {
	before := p.addrs[a]
	after := before + delta
	if after <= 0 {
		delete(p.addrs, a)
	} else {
		p.addrs[a] = after
	}
	switch {
	case before == 0 && after > 0:
		p.written++
		if err := p.k.Links.AddAddr(DummyLink, a); err != nil {
			return fmt.Errorf("route %s through %s: %w", a, DummyLink, err)
		}
	case before > 0 && after <= 0:
		p.written++
		if err := p.k.Links.DelAddr(DummyLink, a); err != nil {
			return fmt.Errorf("remove local route %s through %s: %w", a, DummyLink, err)
		}
	}
	return nil
}
