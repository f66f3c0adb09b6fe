package userspace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// syncRun is the state of one Apply.
type syncRun struct {
	req  *dataplane.Request
	snap *state.Snapshot
	// local is the set of the host's addresses (Proxier.hostLocal).
	local map[netip.Addr]bool
	// written counts listeners opened, closed or given a new backend set.
	written int
}

// Sync opens, updates and closes listeners so that they match snap. Only the
// changed ServicePorts (plus those that failed before) are looked at, unless the
// node's addresses changed or the previous Sync could not finish. One Service's
// failure never stops the others: its error is returned, joined with the rest, and
// it is retried on every Sync until it succeeds.
func (p *Proxier) Apply(ctx context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	snap := req.Snapshot
	stats := dataplane.Applied{}
	if p.closed.Load() {
		return stats, errClosed
	}
	p.adoptLeftovers()
	full := p.needFull || req.Full || req.NodeChanged
	var nodeErr error
	if full || p.hostLocal == nil || time.Since(p.hostAt) > hostAddrTTL {
		local, err := p.localAddrs()
		if err != nil {
			p.needFull = true
			return stats, err
		}
		p.hostAt, p.hostLocal = time.Now(), make(map[netip.Addr]bool, len(local))
		for _, a := range local {
			p.hostLocal[a.Unmap()] = true
		}
		p.classify.setHost(p.hostLocal)
		nodeAddrs, err := p.nodePortAddrs(snap)
		if err != nil {
			nodeErr = err // keep serving on the last good set
		} else if !slices.Equal(nodeAddrs, p.nodeAddrs) {
			full, p.nodeAddrs = true, nodeAddrs
		}
	}
	run := &syncRun{req: req, snap: snap, local: p.hostLocal}
	names := p.namesToSync(snap, req.Changed, full)
	// Close what is no longer wanted first, so that an address:port moving from one
	// Service to another within one snapshot is free when the new owner opens it.
	for _, n := range names {
		p.shrinkService(run, n)
	}
	var errs []error
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			p.needFull = true
			return p.stats(run, full), errors.Join(nodeErr, partial(errs), err)
		}
		if err := p.syncService(run, n); err != nil {
			errs = append(errs, err)
			p.failed[n] = struct{}{}
		} else {
			delete(p.failed, n)
		}
	}
	errs = p.budgetError(errs)
	p.reapDraining()
	if full {
		p.removeLeftovers()
	}
	p.needFull = false
	if nodeErr != nil {
		return p.stats(run, full), errors.Join(nodeErr, partial(errs))
	}
	return p.stats(run, full), partial(errs)
}

// partial wraps per-Service errors: every other Service was programmed.
func partial(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &dataplane.PartialError{Errs: errs}
}

func (p *Proxier) stats(run *syncRun, full bool) dataplane.Applied {
	return dataplane.Applied{
		Full:    full,
		Rules:   map[string]int{"listeners": len(p.frontends)},
		Written: map[string]int{"listeners": run.written},
	}
}

// nodePortAddrs selects the node addresses NodePorts listen on. Service addresses
// kproxy put on the host are interface addresses too, but not node addresses (as
// kube-proxy's IPVS mode leaves kube-ipvs0 out). Node-object addresses this host
// does not have are left out: nothing could arrive there.
func (p *Proxier) nodePortAddrs(snap *state.Snapshot) ([]netip.Addr, error) {
	var list []string
	if p.opts.Config != nil {
		list = p.opts.Config.NodePortAddresses
	}
	host := make([]netip.Addr, 0, len(p.hostLocal))
	for a := range p.hostLocal {
		if p.ourAddrs[a] == 0 && !p.leftovers[a] {
			host = append(host, a)
		}
	}
	sel, err := nodeaddr.Select(nodeaddr.Options{
		NodeAddresses:     snap.Node.Addresses,
		LocalAddresses:    host,
		NodePortAddresses: list,
	})
	if err != nil {
		return nil, err
	}
	out := sel[:0]
	for _, a := range sel {
		if a.IsLoopback() || p.hostLocal[a] {
			out = append(out, a)
		} else if !slices.Contains(p.nodeAddrs, a) {
			p.log.Warn("node address is not on this host; NodePorts are not served there", "address", a.String())
		}
	}
	return out, nil
}

func (p *Proxier) namesToSync(snap *state.Snapshot, changed map[state.ServicePortName]struct{}, full bool) []state.ServicePortName {
	set := map[state.ServicePortName]struct{}{}
	if full {
		for n := range snap.All() {
			set[n] = struct{}{}
		}
		for n := range p.services {
			set[n] = struct{}{}
		}
	} else {
		for n := range changed {
			set[n] = struct{}{}
		}
		for n := range p.failed {
			set[n] = struct{}{}
		}
	}
	out := make([]state.ServicePortName, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	state.SortNames(out)
	return out
}

// shrinkService closes the frontends of n that snap no longer asks for.
func (p *Proxier) shrinkService(run *syncRun, n state.ServicePortName) {
	svc := p.services[n]
	if svc == nil {
		return
	}
	var want []feSpec
	if sp := run.snap.Service(n); sp != nil && supported(sp) {
		want = desiredFrontends(sp, p.nodeAddrs)
	}
	svc.frontends = slices.DeleteFunc(svc.frontends, func(fe *frontend) bool {
		if slices.ContainsFunc(want, func(s feSpec) bool { return s.key == fe.key }) {
			return false
		}
		if fe.listening {
			p.listeners--
		}
		fe.close()
		delete(p.frontends, fe.key)
		p.draining = append(p.draining, fe)
		run.written++
		return true
	})
}

// supported reports whether the relay can serve the protocol (SCTP it cannot).
func supported(sp *state.ServicePort) bool {
	return sp.Protocol == v1.ProtocolTCP || sp.Protocol == v1.ProtocolUDP
}

// syncService opens and updates the frontends of one ServicePort.
func (p *Proxier) syncService(run *syncRun, n state.ServicePortName) error {
	sp := run.snap.Service(n)
	svc := p.services[n]
	if sp == nil {
		if svc != nil {
			p.metrics.forgetService(svc)
			delete(p.services, n)
		}
		return nil
	}
	if !supported(sp) {
		return fmt.Errorf("service %s: protocol %s is not supported in userspace mode", n, sp.Protocol)
	}
	if svc == nil {
		svc = &service{name: n}
		p.services[n] = svc
	}
	svc.sp = sp
	cat := run.req.Endpoints(n)
	reachable := make([]netip.AddrPort, 0, len(cat.AllReachable))
	for _, e := range cat.AllReachable {
		reachable = append(reachable, e.AddrPort())
	}
	p.metrics.syncService(svc, reachable)
	var errs []error
	for _, spec := range desiredFrontends(sp, p.nodeAddrs) {
		c := familyCategorized(run.snap, sp, n, cat, spec.key.addr.Addr())
		want := feWant{hasAny: c.HasAny}
		want.eps, want.inCluster, want.split = endpointsFor(sp, spec.kind, c)
		if err := p.syncFrontend(run, svc, spec, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// familyCategorized is cat for a frontend on address a: only the endpoints of
// a's family, as kube-proxy runs one proxier per family (a dual-stack Service's
// IPv4 ClusterIP never reaches its IPv6 endpoints; with none of its own family
// it refuses). cat is used as it is when every endpoint is of a's family.
func familyCategorized(snap *state.Snapshot, sp *state.ServicePort, n state.ServicePortName, cat state.Categorized, a netip.Addr) state.Categorized {
	all := snap.EndpointsOf(n)
	is4 := a.Unmap().Is4()
	other := func(e state.Endpoint) bool { return e.IP.Unmap().Is4() != is4 }
	if !slices.ContainsFunc(all, other) {
		return cat
	}
	return state.CategorizeEndpoints(sp, slices.DeleteFunc(slices.Clone(all), other), snap.Node)
}

// syncFrontend makes one frontend exist with the right backends, listening
// while it has somewhere to send (socket.go).
func (p *Proxier) syncFrontend(run *syncRun, svc *service, spec feSpec, want feWant) error {
	fe := svc.frontend(spec.key)
	if fe != nil {
		fe.kind = spec.kind
		cfg, err := p.buildConfig(fe, svc, want)
		if cfg != nil {
			install(fe, cfg)
			if fe.udp != nil {
				fe.udp.dropFlowsNotIn(cfg)
			}
			run.written++
		}
		return errors.Join(err, p.syncListening(run, svc.name, fe))
	}
	if owner := p.frontends[spec.key]; owner != nil {
		return fmt.Errorf("service %s: %s %s is already served by service %s", svc.name, spec.kind, spec.key, owner.svc)
	}
	fe = &frontend{feSpec: spec, svc: svc.name}
	cfg, cfgErr := p.buildConfig(fe, svc, want)
	if cfg == nil {
		return cfgErr
	}
	install(fe, cfg)
	if err := p.open(run, fe); err != nil {
		return errors.Join(cfgErr, fmt.Errorf("service %s: %s %s: %w", svc.name, spec.kind, spec.key, err))
	}
	svc.frontends = append(svc.frontends, fe)
	p.frontends[spec.key] = fe
	run.written++
	return cfgErr
}

// open makes the frontend's address local if it must and can, then listens if
// the frontend has somewhere to send. The address is claimed even when it does
// not listen: connections to it must be refused by this host, not routed away.
func (p *Proxier) open(run *syncRun, fe *frontend) error {
	a := fe.key.addr.Addr()
	if err := p.claimAddr(run, fe, a); err != nil {
		return err
	}
	_, err := p.setListening(fe, fe.cfg.Load().listens())
	if err != nil {
		p.releaseAddr(fe)
	}
	return err
}

// listenSocket opens the frontend's socket and starts serving it.
func (p *Proxier) listenSocket(fe *frontend) error {
	if fe.key.proto == v1.ProtocolUDP {
		return p.listenUDP(fe)
	}
	return p.listenTCP(fe)
}

// claimAddr makes a local. Addresses kproxy added are reference-counted by the
// frontends (open or draining) that use them.
func (p *Proxier) claimAddr(run *syncRun, fe *frontend, a netip.Addr) error {
	if p.leftovers[a] {
		delete(p.leftovers, a)
		p.ourAddrs[a] = 1
		p.classify.addOurs(a)
		fe.addedAddr = true
		return nil
	}
	if p.ourAddrs[a] > 0 {
		p.ourAddrs[a]++
		fe.addedAddr = true
		return nil
	}
	if a.IsLoopback() || run.local[a] {
		return nil
	}
	if !p.addrs.canAdd() {
		return fmt.Errorf("address %s is not local and kproxy is not root, so it cannot add it to %s; "+
			"run as root or put the address on an interface", a, dummyLink)
	}
	if err := p.addrs.add(a); err != nil {
		return err
	}
	p.ourAddrs[a] = 1
	p.classify.addOurs(a)
	fe.addedAddr = true
	return nil
}

// releaseAddr drops the frontend's reference on an address kproxy added, removing
// the address with the last one.
func (p *Proxier) releaseAddr(fe *frontend) {
	if !fe.addedAddr {
		return
	}
	fe.addedAddr = false
	a := fe.key.addr.Addr()
	if p.ourAddrs[a]--; p.ourAddrs[a] > 0 {
		return
	}
	delete(p.ourAddrs, a)
	p.classify.delOurs(a)
	if p.hostLocal[a] { // an address an earlier run put on an interface
		delete(p.hostLocal, a) // it is no longer local, even before the next read
		p.classify.setHost(p.hostLocal)
	}
	if err := p.addrs.remove(a); err != nil {
		p.log.Warn("removing Service address", "address", a.String(), "err", err)
	}
}

// reapDraining releases the addresses of closed frontends whose relays all ended;
// removing an address earlier would cut the connections still using it.
func (p *Proxier) reapDraining() {
	kept := p.draining[:0]
	for _, fe := range p.draining {
		if fe.open.Load() > 0 {
			kept = append(kept, fe)
			continue
		}
		p.releaseAddr(fe)
	}
	clear(p.draining[len(kept):])
	p.draining = kept
}

func (p *Proxier) adoptLeftovers() {
	if p.leftovers != nil {
		return
	}
	addrs, err := p.addrs.adopt()
	if err != nil {
		p.log.Warn("reading Service addresses left by an earlier run", "err", err)
	}
	p.leftovers = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		p.leftovers[a] = true
	}
}

// removeLeftovers removes the addresses of an earlier run that no Service claimed
// in a full sync.
func (p *Proxier) removeLeftovers() {
	for a := range p.leftovers {
		delete(p.hostLocal, a)
		if err := p.addrs.remove(a); err != nil {
			p.log.Warn("removing a Service address left by an earlier run", "address", a.String(), "err", err)
		} else {
			p.log.Info("removed a Service address left by an earlier run", "address", a.String())
		}
		delete(p.leftovers, a)
	}
}

// install makes cfg the frontend's config, in the order that keeps a concurrent
// choose consistent (see backendSet.updateAfterStore): sets carried over
// unchanged are not updated again.
func install(fe *frontend, cfg *feConfig) {
	prev := fe.cfg.Swap(cfg)
	var was [2]*backendSet
	if prev != nil {
		was = prev.sets()
	}
	for i, s := range cfg.sets() {
		if s != was[i] {
			s.install()
		}
	}
}
