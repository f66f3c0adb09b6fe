//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/state"
)

// fullSync reconciles everything against what the kernel reports: the first sync,
// and the one after any failure. It still writes only differences.
func (p *Proxier) fullSync(ctx context.Context, req *dataplane.Request) error {
	snap := req.Snapshot
	if err := p.k.Links.EnsureDummy(DummyLink); err != nil {
		return fmt.Errorf("create %s: %w", DummyLink, err)
	}
	p.ready = [2]bool{}
	p.lacking = nil // probe again: a module may have been installed since
	bound, err := p.k.Links.Addrs(DummyLink)
	if err != nil {
		return fmt.Errorf("list local routes through %s: %w", DummyLink, err)
	}
	legacy, err := p.k.Links.IfAddrs(DummyLink)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", DummyLink, err)
	}
	if err := p.refreshNodePortAddrsExcluding(snap, append(legacy, bound...)); err != nil {
		return err
	}
	desired := map[state.ServicePortName]*portModel{}
	for _, name := range snap.SortedNames() {
		m, err := renderPort(snap.Service(name), req.Endpoints(name), p.renderOptions())
		if err != nil {
			p.log.Error("ipvs: not syncing service port", "service", name.String(), "err", err)
			continue
		}
		p.logWarnings(&m)
		desired[name] = &m
	}
	saved, sets, err := p.prepareSets(ctx, snap, desired)
	if err != nil {
		return err
	}
	kernel, err := p.readKernel()
	if err != nil {
		return err
	}
	counts, maxElem := p.counts, p.maxElem
	p.reset()
	p.sets, p.counts, p.maxElem = sets, counts, maxElem
	p.servers = kernel
	for _, vs := range kernel {
		p.objects += 1 + len(vs.Dests)
	}

	var errs []error
	errs = append(errs, p.reconcileAddrs(desired, bound))
	errs = append(errs, p.takeOver(legacy))
	wanted := map[vsKey]bool{}
	var fresh, again []*virtualServer
	for _, m := range desired {
		for _, vs := range m.Servers {
			switch {
			case wanted[vs.Key]:
				again = append(again, vs) // two Services claim it: the last wins, as before
			case p.servers[vs.Key] == nil:
				fresh = append(fresh, vs) // created below, in one batch
			default:
				again = append(again, vs)
			}
			wanted[vs.Key] = true
		}
	}
	errs = append(errs, p.createServers(fresh)...)
	for _, vs := range again {
		if err := p.applyServer(vs.Key, vs); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", vs.Owner, err))
		}
	}
	for key := range kernel {
		if !wanted[key] && !p.excluded(key.Addr) {
			errs = append(errs, p.applyServer(key, nil))
		}
	}
	for key := range p.servers {
		if !wanted[key] {
			p.objects -= 1 + len(p.servers[key].Dests)
			delete(p.servers, key) // excluded: not ours
		}
	}
	errs = append(errs, p.reconcileSets(ctx, saved))
	p.ports = desired
	return errors.Join(errs...)
}

// prepareSets reads the kernel's sets (`ipset save`, returned for
// reconcileSets), and creates the sets and loads the rules of each family used,
// every hash set sized for its entries in desired or keeping the maxelem it has
// (applySets grows it when too small). It returns the desired entries.
func (p *Proxier) prepareSets(ctx context.Context, snap *state.Snapshot, desired map[state.ServicePortName]*portModel) (string, setModel, error) {
	saved, err := p.k.IPSet.Save(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("ipset save: %w", err)
	}
	sets := setModel{}
	var ignore setDiff
	for _, m := range desired {
		sets.apply(m.Sets, +1, &ignore)
	}
	p.counts, p.maxElem = sets.counts(), parseMaxElems(saved)
	if hasSet(saved, growTempSet) { // left by an interrupted grow
		if err := p.k.IPSet.Destroy(ctx, []string{growTempSet}); err != nil {
			return "", nil, err
		}
	}
	if err := p.ensureFamily(ctx, false); err != nil {
		return "", nil, err
	}
	if hasIPv6(snap) {
		if err := p.ensureFamily(ctx, true); err != nil {
			return "", nil, err
		}
	}
	return saved, sets, nil
}

// readKernel lists every virtual server with its real servers.
func (p *Proxier) readKernel() (map[vsKey]*virtualServer, error) {
	svcs, err := p.k.IPVS.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list IPVS virtual servers: %w", err)
	}
	out := make(map[vsKey]*virtualServer, len(svcs))
	for _, s := range svcs {
		vs, ok := fromService(s)
		if !ok {
			continue
		}
		dests, err := p.k.IPVS.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("list real servers of %s: %w", vs.Key, err)
		}
		vs.Dests = make(map[netip.AddrPort]int, len(dests))
		for _, d := range dests {
			vs.Dests[destAddr(d)] = d.Weight
		}
		out[vs.Key] = &vs
	}
	return out, nil
}

// reconcileAddrs routes the desired addresses through kube-ipvs0 and unroutes the others, and records
// how many ServicePorts use each address.
func (p *Proxier) reconcileAddrs(desired map[state.ServicePortName]*portModel, bound []netip.Addr) error {
	for _, m := range desired {
		for _, a := range m.Addrs {
			p.addrs[a]++
		}
	}
	have := map[netip.Addr]bool{}
	var errs []error
	for _, a := range bound {
		have[a] = true
		if p.addrs[a] == 0 {
			p.written++
			if err := p.k.Links.DelAddr(DummyLink, a); err != nil {
				errs = append(errs, fmt.Errorf("remove local route %s through %s: %w", a, DummyLink, err))
			}
		}
	}
	var add []netip.Addr
	for a := range p.addrs {
		if !have[a] {
			add = append(add, a)
		}
	}
	p.written += len(add)
	for i, err := range p.k.Links.AddAddrs(DummyLink, add) {
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s through %s: %w", add[i], DummyLink, err))
		}
	}
	return errors.Join(errs...)
}

// takeOver removes the interface addresses kube-proxy or an older kproxy bound to
// kube-ipvs0, once the local routes that replace them exist (reconcileAddrs).
// Removing the link's last IPv4 address makes the kernel drop every IPv4 route
// through the link, so the routes are then added again: traffic to the
// Service addresses stops only for that one batch.
func (p *Proxier) takeOver(legacy []netip.Addr) error {
	if len(legacy) == 0 {
		return nil
	}
	var errs []error
	v4 := false
	for _, a := range legacy {
		p.written++
		v4 = v4 || a.Is4()
		if err := p.k.Links.DelIfAddr(DummyLink, a); err != nil {
			errs = append(errs, fmt.Errorf("remove address %s from %s: %w", a, DummyLink, err))
		}
	}
	if v4 {
		var again []netip.Addr
		for a := range p.addrs {
			if a.Is4() {
				again = append(again, a)
			}
		}
		p.written += len(again)
		for i, err := range p.k.Links.AddAddrs(DummyLink, again) {
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s through %s: %w", again[i], DummyLink, err))
			}
		}
	}
	p.log.Info("ipvs: replaced the addresses on "+DummyLink+" by local routes", "addresses", len(legacy))
	return errors.Join(errs...)
}

// reconcileSets diffs the desired ipset entries (p.sets) against `ipset save`.
func (p *Proxier) reconcileSets(ctx context.Context, saved string) error {
	have := parseSave(saved)
	var d setDiff
	for e := range have {
		if p.sets[e] == 0 {
			d.Del = append(d.Del, e)
		}
	}
	for e := range p.sets {
		if !have[e] {
			d.Add = append(d.Add, e)
		}
	}
	if d.empty() {
		return nil
	}
	return p.applySets(ctx, d)
}

func (p *Proxier) excluded(a netip.Addr) bool {
	for _, c := range p.o.ExcludeCIDRs {
		if c.Contains(a) {
			return true
		}
	}
	return false
}

func (p *Proxier) refreshNodePortAddrs(snap *state.Snapshot) error {
	bound := make([]netip.Addr, 0, len(p.addrs))
	for a := range p.addrs {
		bound = append(bound, a)
	}
	return p.refreshNodePortAddrsExcluding(snap, bound)
}

// refreshNodePortAddrsExcluding selects the NodePort addresses, leaving out the
// Service addresses (local routes through kube-ipvs0, and the interface addresses
// kube-proxy left on it until the takeover removes them).
func (p *Proxier) refreshNodePortAddrsExcluding(snap *state.Snapshot, bound []netip.Addr) error {
	var local []netip.Addr
	if len(snap.Node.Addresses) == 0 && p.k.LocalAddrs != nil {
		all, err := p.k.LocalAddrs()
		if err != nil {
			return fmt.Errorf("list local addresses: %w", err)
		}
		skip := make(map[netip.Addr]bool, len(bound))
		for _, a := range bound {
			skip[a] = true
		}
		for _, a := range all {
			if !skip[a] {
				local = append(local, a)
			}
		}
	}
	addrs, err := nodeaddr.Select(nodeaddr.Options{
		NodeAddresses:     snap.Node.Addresses,
		LocalAddresses:    local,
		NodePortAddresses: p.o.NodePortAddresses,
	})
	if err != nil {
		return err
	}
	p.nodePortAddrs = addrs
	return nil
}
