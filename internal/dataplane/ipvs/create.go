//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
)

// createPieceOps bounds the objects (virtual plus real servers) handed to one
// batch call. A cold sync of 100,000 Services x 5 endpoints has 600,000: encoded
// all at once, their ops, moby structs and netlink messages were a few hundred
// MB alive together at the sync's peak; in pieces they are garbage after each.
const createPieceOps = 8192

// createServers creates virtual servers the kernel does not have, with their
// real servers, in batches of about createPieceOps objects: the bulk of a cold
// sync. Each failure is returned naming its Service. A virtual server refused
// for a scheduler the kernel lacks is retried, one object at a time, on the
// node default (lacking.go).
func (p *Proxier) createServers(servers []*virtualServer) []error {
	var errs []error
	for len(servers) > 0 {
		n, ops := 0, 0
		for n < len(servers) && (n == 0 || ops+1+len(servers[n].Dests) <= createPieceOps) {
			ops += 1 + len(servers[n].Dests)
			n++
		}
		errs = append(errs, p.createPiece(servers[:n], ops)...)
		servers = servers[n:]
	}
	return errs
}

// createPiece creates servers, whose objects number size, in one batch call.
func (p *Proxier) createPiece(servers []*virtualServer, size int) []error {
	ops := make([]CreateOp, 0, size)
	type placed struct {
		vs    *virtualServer
		at    int // index of the virtual server's op
		dests []netip.AddrPort
	}
	plan := make([]placed, 0, len(servers))
	for _, vs := range servers {
		svc := toService(vs)
		pl := placed{vs: vs, at: len(ops), dests: make([]netip.AddrPort, 0, len(vs.Dests))}
		ops = append(ops, CreateOp{Service: svc})
		for addr, w := range vs.Dests {
			p.graceful.cancel(vs.Key, addr) // a new virtual server has nothing draining
			pl.dests = append(pl.dests, addr)
			ops = append(ops, CreateOp{Service: svc, Dest: toDestination(addr, w)})
		}
		plan = append(plan, pl)
	}
	results := p.batch().Create(ops)
	p.written += len(ops)
	var errs []error
	for _, pl := range plan {
		vs := pl.vs
		if err := results[pl.at]; err != nil {
			if p.kernelLacks(vs.Scheduler) {
				if err := p.applyServer(vs.Key, p.withDefaultScheduler(vs)); err != nil {
					errs = append(errs, fmt.Errorf("service %s: %w", vs.Owner, err))
				}
				continue
			}
			// Its real servers failed with it and are not reported again.
			errs = append(errs, fmt.Errorf("service %s: create virtual server %s (scheduler %s): %w", vs.Owner, vs.Key, vs.Scheduler, err))
			continue
		}
		have := &virtualServer{Key: vs.Key, Scheduler: vs.Scheduler, Flags: vs.Flags, Timeout: vs.Timeout,
			Dests: make(map[netip.AddrPort]int, len(pl.dests)), Owner: vs.Owner}
		p.servers[vs.Key] = have
		p.objects++
		for i, addr := range pl.dests {
			if err := results[pl.at+1+i]; err != nil {
				errs = append(errs, fmt.Errorf("service %s: real server %s of %s: %w", vs.Owner, addr, vs.Key, err))
				continue
			}
			have.Dests[addr] = vs.Dests[addr]
			p.objects++
		}
	}
	return errs
}

// batch is the kernel's IPVSBatch, or one object per call when it has none.
func (p *Proxier) batch() IPVSBatch {
	if p.k.Batch != nil {
		return p.k.Batch
	}
	return seqBatch{p.k.IPVS}
}
