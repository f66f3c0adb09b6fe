//go:build linux

package nftables

import (
	"context"
	"net/netip"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

var _ dataplane.Lister = (*Proxier)(nil)

// List implements dataplane.Lister for `kproxy list`: one entry per Service address
// and port, with the endpoints new connections are spread over and the scheduler
// the kernel actually runs (after any fallback). It reads the snapshot of the last
// successful sync, not the kernel: listing the table is what this mode avoids.
func (p *Proxier) List(ctx context.Context) ([]dataplane.VirtualService, error) {
	snap := p.lastSynced.Load()
	if snap == nil {
		return nil, ctx.Err()
	}
	var out []dataplane.VirtualService
	for _, n := range snap.SortedNames() {
		out = append(out, virtualServices(snap, n)...)
	}
	return out, ctx.Err()
}

func virtualServices(snap *state.Snapshot, n state.ServicePortName) []dataplane.VirtualService {
	sp := snap.Service(n)
	cat := dataplane.NewRequest(snap).Endpoints(n)
	sched := newSchedule(renderOptions{defaultScheduler: schedRandom}, sp, &fragment{})
	entry := func(a netip.Addr, eps []state.Endpoint) dataplane.VirtualService {
		vs := dataplane.VirtualService{
			Service: n.String(), Protocol: string(sp.Protocol),
			Address:           netip.AddrPortFrom(a, uint16(sp.Port)).String(),
			Scheduler:         sched.name,
			Flags:             sp.SchedulerFlags,
			PersistentSeconds: affinitySeconds(sp),
			RealServers:       []dataplane.RealServer{},
		}
		for _, e := range eps {
			if e.IP.Is4() != a.Is4() {
				continue
			}
			vs.RealServers = append(vs.RealServers, dataplane.RealServer{
				Address: e.String(), Forward: "Masq", Weight: e.Weight})
		}
		return vs
	}
	internal, external := cat.Cluster, cat.Cluster
	if sp.InternalPolicyLocal {
		internal = cat.Local
	}
	if sp.ExternalPolicyLocal {
		external = cat.Local
	}
	var out []dataplane.VirtualService
	for _, a := range sp.ClusterIPs {
		out = append(out, entry(a, internal))
	}
	for _, a := range append(append([]netip.Addr(nil), sp.ExternalIPs...), sp.LoadBalancerIPs...) {
		out = append(out, entry(a, external))
	}
	return out
}
