package userspace

import (
	"context"
	"time"
)

// drainQuiet is how long a draining relay must have had no TCP connection open
// and none accepted before it closes its listeners early.
const drainQuiet = time.Second

// awaitQuiet keeps the listeners serving while draining. It returns once no TCP
// connection is open and none was accepted for drainQuiet, or at until, or when
// ctx is done. A successor that bound the same addresses shares the new
// connections meanwhile.
func (p *Proxier) awaitQuiet(ctx context.Context, until time.Time) {
	tick := time.NewTicker(drainQuiet / 10)
	defer tick.Stop()
	stop := time.NewTimer(time.Until(until))
	defer stop.Stop()
	p.log.Info("draining: still accepting connections until quiet", "quiet", drainQuiet, "until", until)
	for {
		if p.conns.len() == 0 && time.Since(time.Unix(0, p.lastAccept.Load())) >= drainQuiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-stop.C:
			p.log.Info("draining: closing the listeners", "open", p.admission.open())
			return
		case <-tick.C:
		}
	}
}

// handOver prepares closing the listeners after a drain: with
// net.ipv4.tcp_migrate_req the kernel hands the connections still queued on them
// to a successor listening on the same addresses (SO_REUSEPORT) instead of
// resetting them. Without a successor they are refused either way.
func (p *Proxier) handOver() {
	changed, err := p.enableMigrate()
	switch {
	case err != nil:
		p.log.Warn("cannot set net.ipv4.tcp_migrate_req: connections queued on the listeners when they close are reset, not handed to a successor", "err", err)
	case changed:
		p.log.Info("set net.ipv4.tcp_migrate_req=1 so that queued connections move to a successor's listeners")
	}
}
