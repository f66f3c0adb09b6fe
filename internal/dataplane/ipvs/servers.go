//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
)

// applyServer makes the virtual server key match want (nil deletes it), starting
// from what the previous syncs programmed. Writes happen only for differences.
func (p *Proxier) applyServer(key vsKey, want *virtualServer) error {
	have := p.servers[key]
	switch {
	case want == nil && have == nil:
		return nil
	case want == nil:
		p.written++
		p.objects -= 1 + len(have.Dests) + p.graceful.forgetServer(key)
		delete(p.servers, key)
		if err := p.k.IPVS.DelService(keyOnlyService(key)); err != nil {
			return fmt.Errorf("delete virtual server %s: %w", key, err)
		}
		return nil
	case have == nil:
		p.written++
		if err := p.k.IPVS.NewService(toService(want)); err != nil {
			if !p.kernelLacks(want.Scheduler) {
				return fmt.Errorf("create virtual server %s (scheduler %s): %w", key, want.Scheduler, err)
			}
			return p.applyServer(key, p.withDefaultScheduler(want))
		}
		p.objects++
		have = &virtualServer{Key: key, Scheduler: want.Scheduler, Flags: want.Flags, Timeout: want.Timeout, Dests: map[netip.AddrPort]int{}}
		p.servers[key] = have
	case !have.sameService(want):
		p.written++
		if err := p.k.IPVS.UpdateService(toService(want)); err != nil {
			if !p.kernelLacks(want.Scheduler) {
				return fmt.Errorf("update virtual server %s (scheduler %s): %w", key, want.Scheduler, err)
			}
			return p.applyServer(key, p.withDefaultScheduler(want))
		}
		have.Scheduler, have.Flags, have.Timeout = want.Scheduler, want.Flags, want.Timeout
	}
	have.Owner = want.Owner
	return p.applyDests(have, want.Dests)
}

// applyDests adds, reweights and removes real servers. A removed TCP real server is
// drained: weight 0 and deleted by the graceful queue once its connections end. UDP
// and SCTP real servers are deleted at once (their conntrack flows are removed after
// the sync).
func (p *Proxier) applyDests(have *virtualServer, want map[netip.AddrPort]int) error {
	svc := keyOnlyService(have.Key)
	for addr, w := range want {
		cur, ok := have.Dests[addr]
		if ok && cur == w {
			continue
		}
		p.written++
		p.log.Debug("ipvs: real server", "virtualServer", have.Key.String(), "realServer", addr.String(), "weight", w, "was", cur, "existed", ok)
		var err error
		if ok || p.graceful.cancel(have.Key, addr) {
			err = p.k.IPVS.UpdateDestination(svc, toDestination(addr, w))
		} else {
			err = p.k.IPVS.NewDestination(svc, toDestination(addr, w))
			if err == nil {
				p.objects++
			}
		}
		if err != nil {
			return fmt.Errorf("real server %s of %s: %w", addr, have.Key, err)
		}
		have.Dests[addr] = w
	}
	for addr, w := range have.Dests {
		if _, ok := want[addr]; ok {
			continue
		}
		delete(have.Dests, addr)
		if w == 0 && have.Key.Proto == protoTCP && p.graceful.draining(have.Key, addr) {
			continue // found in the kernel by a full sync, already draining
		}
		p.written++
		if err := p.removeDest(have.Key, addr); err != nil {
			return err
		}
	}
	return nil
}

// removeDest starts draining a TCP real server or deletes any other at once.
func (p *Proxier) removeDest(key vsKey, addr netip.AddrPort) error {
	svc := keyOnlyService(key)
	p.log.Debug("ipvs: real server removed", "virtualServer", key.String(), "realServer", addr.String())
	if key.Proto == protoTCP {
		if err := p.k.IPVS.UpdateDestination(svc, toDestination(addr, 0)); err != nil {
			return fmt.Errorf("drain real server %s of %s: %w", addr, key, err)
		}
		p.graceful.add(key, addr)
		return nil
	}
	if err := p.k.IPVS.DelDestination(svc, toDestination(addr, 0)); err != nil {
		return fmt.Errorf("delete real server %s of %s: %w", addr, key, err)
	}
	p.objects--
	return nil
}
