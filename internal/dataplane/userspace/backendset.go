package userspace

import (
	"maps"
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
	// extra lists those few more: the keys of backends not in list.
	extra []netip.AddrPort
	// sorted is true when list is in strictly increasing address order (as the
	// Tracker gives endpoints: deduplicated and sorted), so that the next set
	// can be derived from this one by a merge (buildSetFrom).
	sorted bool
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
	next := &backendSet{want: w.sched, wantFlags: w.flags, list: list, sorted: sortedUnique(list)}
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
	if old != nil && old.sorted && next.sorted {
		next.deriveFrom(old, svc, w.eps, sameSched)
	} else {
		next.build(old, svc, w.eps, sameSched)
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

// build fills current and backends from list, taking the backends of old (nil
// for none) that stay.
func (next *backendSet) build(old *backendSet, svc *service, eps []state.Endpoint, sameSched bool) {
	next.backends = make(map[netip.AddrPort]*backend, len(next.list))
	next.current = make(map[netip.AddrPort]int, len(next.list))
	for i, b := range next.list {
		next.current[b.Addr] = b.Weight
		if old != nil && old.backends[b.Addr] != nil {
			next.backends[b.Addr] = old.backends[b.Addr]
			continue
		}
		next.backends[b.Addr] = newBackend(svc, b.Addr, eps[i])
	}
	if sameSched {
		for _, b := range old.list {
			if next.backends[b.Addr] == nil {
				next.backends[b.Addr] = old.backends[b.Addr]
				next.extra = append(next.extra, b.Addr)
			}
		}
	}
}

// deriveFrom is build for two sorted lists: it copies old's maps and applies
// the difference, found by one merge of the lists, so that a change of one
// endpoint among 10,000 costs two map copies and a few updates instead of
// 20,000 map inserts. The result is the same as build's.
func (next *backendSet) deriveFrom(old *backendSet, svc *service, eps []state.Endpoint, sameSched bool) {
	next.current = maps.Clone(old.current)
	next.backends = maps.Clone(old.backends)
	var added []int
	var removed []netip.AddrPort
	i, j := 0, 0
	for i < len(old.list) || j < len(next.list) {
		var c int
		switch {
		case i == len(old.list):
			c = 1
		case j == len(next.list):
			c = -1
		default:
			c = old.list[i].Addr.Compare(next.list[j].Addr)
		}
		switch {
		case c < 0:
			removed = append(removed, old.list[i].Addr)
			i++
		case c > 0:
			added = append(added, j)
			j++
		default:
			if w := next.list[j].Weight; w != old.list[i].Weight {
				next.current[next.list[j].Addr] = w
			}
			i, j = i+1, j+1
		}
	}
	for _, a := range removed {
		delete(next.current, a)
	}
	for _, k := range added {
		b := next.list[k]
		next.current[b.Addr] = b.Weight
		if next.backends[b.Addr] == nil {
			next.backends[b.Addr] = newBackend(svc, b.Addr, eps[k])
		}
	}
	// old's extras leave, unless they came back.
	for _, a := range old.extra {
		if _, back := next.current[a]; !back {
			delete(next.backends, a)
		}
	}
	if !sameSched {
		for _, a := range removed {
			delete(next.backends, a)
		}
		return
	}
	next.extra = removed
}

func newBackend(svc *service, a netip.AddrPort, e state.Endpoint) *backend {
	return &backend{addr: a, metric: svc.metrics[a], local: e.IsLocal || a.Addr().IsLoopback()}
}

// sortedUnique reports whether list is in strictly increasing address order.
func sortedUnique(list []lb.Backend) bool {
	for i := 1; i < len(list); i++ {
		if list[i-1].Addr.Compare(list[i].Addr) >= 0 {
			return false
		}
	}
	return true
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
