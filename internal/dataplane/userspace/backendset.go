package userspace

import (
	"net/netip"
	"slices"
	"time"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// backendSet is one set of endpoints a frontend sends to, with its own
// scheduler (and so its own connection counters), affinity table and traffic
// counters. A frontend has one, or two when its traffic policy depends on the
// client (feConfig.inCluster).
type backendSet struct {
	sched lb.Scheduler
	// want and wantFlags are what the Service asked for; sched is the default
	// scheduler when that could not be built.
	want      string
	wantFlags []string
	flags     []string
	// list is the backend set in scheduler order, for comparisons and listing.
	list     []lb.Backend
	backends map[netip.AddrPort]*backend
	affinity *affinity
	// current maps the endpoints of list to their weights. backends may hold a few
	// more: those the shared scheduler may still return until updateAfterStore.
	current map[netip.AddrPort]int
	// updateAfterStore is set when sched is shared with the set being replaced:
	// Sync installs the config first and then updates the scheduler, so that every
	// backend a concurrent Pick returns is in the set the connection loads.
	updateAfterStore bool
}

// setWant is what one backend set should become.
type setWant struct {
	sched     string
	flags     []string
	eps       []state.Endpoint
	affinityT time.Duration
}

// sameAs reports whether old already is what w asks for.
func (w setWant) sameAs(old *backendSet, list []lb.Backend) bool {
	return old != nil && old.want == w.sched && slices.Equal(old.wantFlags, w.flags) &&
		slices.Equal(old.list, list) && old.affinity.timeoutIs(w.affinityT)
}

// buildSet makes the next backend set from old (nil for a new one), keeping
// the scheduler, the affinity table and the counters of endpoints that stay. It
// returns old itself when nothing changed, and nil only when no scheduler at all
// could be built (with the error).
func (p *Proxier) buildSet(svc *service, old *backendSet, w setWant) (*backendSet, error) {
	list := make([]lb.Backend, 0, len(w.eps))
	for _, e := range w.eps {
		list = append(list, lb.Backend{Addr: e.AddrPort(), Weight: e.Weight})
	}
	if w.sameAs(old, list) {
		return old, nil
	}
	next := &backendSet{want: w.sched, wantFlags: w.flags, list: list,
		backends: make(map[netip.AddrPort]*backend, len(list)), current: make(map[netip.AddrPort]int, len(list))}
	sameSched := old != nil && old.want == w.sched && slices.Equal(old.wantFlags, w.flags)
	var err error
	if sameSched {
		next.sched, next.flags, next.updateAfterStore = old.sched, old.flags, true
	} else {
		next.sched, next.flags, err = p.newScheduler(svc.name, w.sched, w.flags)
		if next.sched == nil {
			return nil, err
		}
		next.sched.Update(list)
	}
	for i, b := range list {
		next.current[b.Addr] = b.Weight
		if old != nil && old.backends[b.Addr] != nil {
			next.backends[b.Addr] = old.backends[b.Addr]
			continue
		}
		local := w.eps[i].IsLocal || b.Addr.Addr().IsLoopback()
		next.backends[b.Addr] = &backend{addr: b.Addr, metric: svc.metrics[b.Addr], local: local}
	}
	if sameSched {
		for _, b := range old.list {
			if next.backends[b.Addr] == nil {
				next.backends[b.Addr] = old.backends[b.Addr]
			}
		}
	}
	if w.affinityT > 0 {
		if old != nil && old.affinity.timeoutIs(w.affinityT) {
			next.affinity = old.affinity
		} else {
			next.affinity = newAffinity(w.affinityT)
		}
	}
	return next, err
}

// install finishes installing a set whose config was just stored (see
// updateAfterStore).
func (s *backendSet) install() {
	if s != nil && s.updateAfterStore {
		s.sched.Update(s.list)
	}
}

// empty reports whether the set has no endpoint to send to.
func (s *backendSet) empty() bool { return s == nil || len(s.list) == 0 }
