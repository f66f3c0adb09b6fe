//go:build linux

package ipvs

import (
	"net/netip"
	"time"
)

// drainKey is one real server being drained.
type drainKey struct {
	VS   vsKey
	Addr netip.AddrPort
}

// graceful holds TCP real servers that left their Service: they stay in the kernel at
// weight 0, so established connections go on while new ones go elsewhere, and are
// deleted once their active and inactive connections reach 0 or the timeout passes.
// All methods run with the Proxier's mutex held.
type graceful struct {
	p       *Proxier
	pending map[drainKey]time.Time // deadline
	timer   *time.Timer
	now     func() time.Time
}

func newGraceful(p *Proxier) *graceful {
	return &graceful{p: p, pending: map[drainKey]time.Time{}, now: time.Now}
}

// add starts draining; an entry already draining keeps its deadline.
func (g *graceful) add(vs vsKey, addr netip.AddrPort) {
	k := drainKey{vs, addr}
	if _, ok := g.pending[k]; !ok {
		g.pending[k] = g.now().Add(g.p.o.GracefulTimeout)
	}
}

// cancel stops draining a real server that is wanted again; true when it was
// draining (it is still in the kernel and needs an update, not a create).
func (g *graceful) cancel(vs vsKey, addr netip.AddrPort) bool {
	k := drainKey{vs, addr}
	_, ok := g.pending[k]
	delete(g.pending, k)
	return ok
}

func (g *graceful) draining(vs vsKey, addr netip.AddrPort) bool {
	_, ok := g.pending[drainKey{vs, addr}]
	return ok
}

// forgetServer drops the entries of a deleted virtual server and returns how many.
func (g *graceful) forgetServer(vs vsKey) int {
	n := 0
	for k := range g.pending {
		if k.VS == vs {
			delete(g.pending, k)
			n++
		}
	}
	return n
}

// process deletes drained real servers whose connections ended or whose time ran
// out, and schedules the next check while any remain.
func (g *graceful) process() {
	byVS := map[vsKey][]drainKey{}
	for k := range g.pending {
		byVS[k.VS] = append(byVS[k.VS], k)
	}
	now := g.now()
	for vs, keys := range byVS {
		dests, err := g.p.k.IPVS.GetDestinations(keyOnlyService(vs))
		if err != nil {
			g.p.log.Warn("ipvs: graceful termination: list real servers", "virtualServer", vs.String(), "err", err)
			continue
		}
		conns := map[netip.AddrPort]int{}
		for _, d := range dests {
			conns[destAddr(d)] = d.ActiveConnections + d.InactiveConnections
		}
		for _, k := range keys {
			n, present := conns[k.Addr]
			if !present {
				delete(g.pending, k)
				g.p.objects--
				continue
			}
			if n > 0 && now.Before(g.pending[k]) {
				continue
			}
			if err := g.p.k.IPVS.DelDestination(keyOnlyService(vs), toDestination(k.Addr, 0)); err != nil {
				g.p.log.Warn("ipvs: graceful termination: delete real server", "virtualServer", vs.String(), "realServer", k.Addr.String(), "err", err)
				continue
			}
			g.p.log.Info("ipvs: drained real server deleted", "virtualServer", vs.String(), "realServer", k.Addr.String(), "connections", n)
			delete(g.pending, k)
			g.p.objects--
		}
	}
	g.schedule()
}

func (g *graceful) schedule() {
	if len(g.pending) == 0 || g.timer != nil || g.p.o.GracefulInterval < 0 {
		return
	}
	g.timer = time.AfterFunc(g.p.o.GracefulInterval, func() {
		g.p.mu.Lock()
		defer g.p.mu.Unlock()
		g.timer = nil
		g.process()
	})
}
