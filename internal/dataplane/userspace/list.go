package userspace

import (
	"context"
	"slices"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
)

// List reports one virtual service per listener, with its scheduler's connection
// counters and the relay's traffic counters, the way `ipvsadm -Ln --stats --rate`
// shows the kernel's. Packet counts are unknown in userspace and stay 0.
func (p *Proxier) List(ctx context.Context) ([]dataplane.VirtualService, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fes := make([]*frontend, 0, len(p.frontends))
	for _, fe := range p.frontends {
		fes = append(fes, fe)
	}
	slices.SortFunc(fes, func(a, b *frontend) int {
		if c := a.key.addr.Compare(b.key.addr); c != 0 {
			return c
		}
		return strings.Compare(string(a.key.proto), string(b.key.proto))
	})
	out := make([]dataplane.VirtualService, 0, len(fes))
	for _, fe := range fes {
		if vs, ok := p.virtualService(fe); ok {
			out = append(out, vs)
		}
	}
	return out, ctx.Err()
}

func (p *Proxier) virtualService(fe *frontend) (dataplane.VirtualService, bool) {
	cfg := fe.cfg.Load()
	svc := p.services[fe.svc]
	if cfg == nil || svc == nil {
		return dataplane.VirtualService{}, false
	}
	vs := dataplane.VirtualService{
		Service:           fe.svc.String(),
		Protocol:          string(fe.key.proto),
		Address:           fe.key.addr.String(),
		Scheduler:         cfg.set.sched.Name(),
		Flags:             cfg.set.flags,
		PersistentSeconds: int(svc.sp.AffinityTimeout.Seconds()),
		RealServers:       []dataplane.RealServer{},
		Stats:             &dataplane.Stats{},
	}
	// With an inCluster set (externalTrafficPolicy Local), its endpoints are
	// real servers of the same virtual service; one in both sets is one row.
	row := map[string]int{}
	for _, set := range cfg.sets() {
		if set == nil {
			continue
		}
		for _, c := range set.sched.Counters() {
			i, seen := row[c.Addr.String()]
			if !seen {
				i = len(vs.RealServers)
				row[c.Addr.String()] = i
				vs.RealServers = append(vs.RealServers, dataplane.RealServer{
					Address: c.Addr.String(), Forward: "Masq", Weight: c.Weight})
			}
			rs := &vs.RealServers[i]
			rs.ActiveConn += c.Active
			rs.InActConn += c.Inactive
			if b := set.backend(c.Addr); b != nil {
				st := b.stats.snapshot()
				if rs.Stats == nil {
					rs.Stats = &dataplane.Stats{}
				}
				addStats(rs.Stats, st)
				addStats(vs.Stats, st)
			}
		}
	}
	return vs, true
}
