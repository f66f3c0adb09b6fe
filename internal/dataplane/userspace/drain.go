package userspace

import (
	"context"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
)

// drainQuiet is how long a draining relay must have had no TCP connection open
// and none accepted before it closes its listeners early.
const drainQuiet = time.Second

// awaitQuiet keeps the listeners serving while draining. It returns true once a
// successor listens on every TCP address (checked every successorCheck), or false
// once no TCP connection is open and none was accepted for drainQuiet, at until,
// or when ctx is done.
func (p *Proxier) awaitQuiet(ctx context.Context, until time.Time) (successor bool) {
	tick := time.NewTicker(drainQuiet / 10)
	defer tick.Stop()
	stop := time.NewTimer(time.Until(until))
	defer stop.Stop()
	p.log.Info("draining: still accepting connections until quiet or a successor listens", "quiet", drainQuiet, "until", until)
	var checked time.Time
	for {
		if time.Since(checked) >= successorCheck {
			checked = time.Now()
			if p.successorListening() {
				p.log.Info("draining: a successor listens on every address; closing the listeners")
				return true
			}
		}
		if p.conns.len() == 0 && time.Since(time.Unix(0, p.lastAccept.Load())) >= drainQuiet {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-stop.C:
			p.log.Info("draining: closing the listeners", "open", p.admission.open())
			return false
		case <-tick.C:
		}
	}
}

// successorCheck is how often a drain looks for a successor's listeners.
const successorCheck = 500 * time.Millisecond

// successorListening reports whether another socket listens on every TCP address
// this process listens on: a new kproxy that took its addresses over.
func (p *Proxier) successorListening() bool {
	var addrs []netip.AddrPort
	for k, fe := range p.frontends {
		// A port without endpoints has no listener, here or in the successor.
		if k.proto == v1.ProtocolTCP && fe.listening {
			addrs = append(addrs, k.addr)
		}
	}
	if len(addrs) == 0 {
		return false
	}
	counts, err := listenerCounts(addrs)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if counts[a] < 2 {
			return false
		}
	}
	return true
}

// handOver prepares closing the listeners when a successor listens on the same
// addresses: with net.ipv4.tcp_migrate_req the kernel hands it the connections
// still queued on them instead of resetting them. Without a successor there is
// nobody to hand them to, and the namespace's setting is left alone.
func (p *Proxier) handOver(successor bool) {
	if !successor {
		return
	}
	changed, err := p.enableMigrate()
	switch {
	case err != nil:
		p.log.Warn("cannot set net.ipv4.tcp_migrate_req: connections queued on the listeners when they close are reset, not handed to the successor", "err", err)
	case changed:
		p.log.Info("set net.ipv4.tcp_migrate_req=1 so that queued connections move to the successor's listeners")
	}
}
