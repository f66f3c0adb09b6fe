//go:build linux

package ipvs

import (
	"context"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// Render renders every ServicePort without touching the kernel and returns the
// number of kernel objects (virtual servers plus real servers).
func (p *Proxier) Render(snap *state.Snapshot) (int, error) {
	p.mu.Lock()
	o := p.renderOptions()
	p.mu.Unlock()
	n := 0
	req := dataplane.NewRequest(snap)
	for name, sp := range snap.All() {
		m, err := renderPort(sp, req.Endpoints(name), o)
		if err != nil {
			return n, err
		}
		n += m.objects()
	}
	return n, nil
}

// BaselineApply empties the IPVS table and loads every virtual and real server of
// snap in one pass, the way `ipvsadm -R` restores a saved table: the reference a
// sync is compared with. The timed part is the load only.
func (p *Proxier) BaselineApply(ctx context.Context, snap *state.Snapshot) (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := deleteServers(p.k.IPVS, p.o.ExcludeCIDRs); err != nil {
		return 0, err
	}
	p.reset()
	p.needFull = true
	o := p.renderOptions()
	var servers []*virtualServer
	req := dataplane.NewRequest(snap)
	for name, sp := range snap.All() {
		m, err := renderPort(sp, req.Endpoints(name), o)
		if err != nil {
			return 0, err
		}
		servers = append(servers, m.Servers...)
	}
	start := time.Now()
	for _, vs := range servers {
		svc := toService(vs)
		if err := p.k.IPVS.NewService(svc); err != nil {
			return 0, err
		}
		for addr, w := range vs.Dests {
			if err := p.k.IPVS.NewDestination(svc, toDestination(addr, w)); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}
