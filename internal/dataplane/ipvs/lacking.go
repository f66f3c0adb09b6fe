//go:build linux

package ipvs

import "fmt"

// Schedulers the kernel lacks. preflight checks the node default at start; a
// Service may ask for any other IPVS scheduler, whose ip_vs_<name> module may be
// missing. When the kernel refuses a virtual server, kproxy probes the scheduler
// alone (as preflight does); if the probe is refused too, the Service gets the node
// default with a warning instead of failing every sync, and later renders fall back
// at once. A full sync forgets the refusals, so a module installed later is used.

// defaultScheduler is the node default the renders fall back to.
func (p *Proxier) defaultScheduler() string {
	if p.o.Scheduler == "" {
		return "rr"
	}
	return p.o.Scheduler
}

// kernelLacks probes sched with a throwaway virtual server and records a refusal.
func (p *Proxier) kernelLacks(sched string) bool {
	if sched == p.defaultScheduler() {
		return false // checked by preflight; a refusal here is another problem
	}
	vs := *probeVS
	vs.Scheduler = sched
	svc := toService(&vs)
	_ = p.k.IPVS.DelService(svc) // left over from a crash
	if err := p.k.IPVS.NewService(svc); err != nil {
		if p.lacking == nil {
			p.lacking = map[string]bool{}
		}
		p.lacking[sched] = true
		return true
	}
	_ = p.k.IPVS.DelService(svc)
	return false
}

// withDefaultScheduler is want on the node default scheduler, without the flags
// that belonged to the scheduler it asked for.
func (p *Proxier) withDefaultScheduler(want *virtualServer) *virtualServer {
	c := *want
	c.Scheduler = p.defaultScheduler()
	c.Flags &^= flagSched1 | flagSched2 | flagSched3
	p.log.Warn(fmt.Sprintf("ipvs: service %s: the kernel has no IPVS scheduler %q (module ip_vs_%s), using the node default %q",
		want.Owner, want.Scheduler, want.Scheduler, c.Scheduler))
	return &c
}
