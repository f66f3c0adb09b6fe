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
	list []lb.Backend
	// byAddr holds the backends of list, in increasing address order, and a few
	// more (inList false): those the shared scheduler may still return until
	// updateAfterStore. A sorted slice rather than maps: with 3 endpoints the
	// two maps it replaces took about 700 bytes per set, this 72.
	byAddr   []setEntry
	affinity *affinity
	// updateAfterStore is set when sched is shared with the set being replaced:
	// Sync installs the config first and then updates the scheduler, so that every
	// backend a concurrent Pick returns is in the set the connection loads.
	updateAfterStore bool
}

// setEntry is one backend of a set.
type setEntry struct {
	b *backend
	// weight is the endpoint's weight in list; inList is false for the backends
	// kept only until the shared scheduler is updated.
	weight int
	inList bool
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
	next := &backendSet{want: w.sched, wantFlags: w.flags, list: list}
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
	next.fill(old, svc, w.eps, sameSched)
	if w.affinityT > 0 {
		if old != nil && old.affinity.timeoutIs(w.affinityT) {
			next.affinity = old.affinity
		} else {
			next.affinity = newAffinity(w.affinityT)
		}
	}
	return next, err
}

// fill makes byAddr from list, taking the backends of old (nil for none)
// that stay, by one merge of old.byAddr with list in address order: a change of
// one endpoint among 10,000 costs a copy of the slice, not 10,000 map inserts.
// When sameSched, the endpoints of old's list that leave stay as extras; old's
// extras leave unless they came back. An address repeated in list keeps its
// first weight, as lb's pool does.
func (next *backendSet) fill(old *backendSet, svc *service, eps []state.Endpoint, sameSched bool) {
	order := addrOrder(next.list)
	var prev []setEntry
	if old != nil {
		prev = old.byAddr
	}
	out := make([]setEntry, 0, len(order)+len(prev)/8)
	i := 0
	take := func(a netip.AddrPort) *backend { // the old entry for a, consumed
		for ; i < len(prev) && prev[i].b.addr.Compare(a) < 0; i++ {
			if sameSched && prev[i].inList {
				out = append(out, setEntry{b: prev[i].b})
			}
		}
		if i < len(prev) && prev[i].b.addr == a {
			i++
			return prev[i-1].b
		}
		return nil
	}
	for _, k := range order {
		b := next.list[k]
		if n := len(out); n > 0 && out[n-1].inList && out[n-1].b.addr == b.Addr {
			continue // a repeat: the first (stable order) wins
		}
		be := take(b.Addr)
		if be == nil {
			be = newBackend(svc, b.Addr, eps[k])
		}
		out = append(out, setEntry{b: be, weight: b.Weight, inList: true})
	}
	for ; i < len(prev); i++ {
		if sameSched && prev[i].inList {
			out = append(out, setEntry{b: prev[i].b})
		}
	}
	next.byAddr = out
}

// addrOrder returns the indexes of list in increasing address order, stable
// for repeats. It allocates nothing more when list is already sorted, as the
// Tracker gives endpoints.
func addrOrder(list []lb.Backend) []int {
	order := make([]int, len(list))
	sorted := true
	for k := range order {
		order[k] = k
		if k > 0 && list[k-1].Addr.Compare(list[k].Addr) > 0 {
			sorted = false
		}
	}
	if !sorted {
		slices.SortStableFunc(order, func(x, y int) int { return list[x].Addr.Compare(list[y].Addr) })
	}
	return order
}

// entry finds the backend for a in the set: one of list, or an extra.
func (s *backendSet) entry(a netip.AddrPort) (setEntry, bool) {
	i, ok := slices.BinarySearchFunc(s.byAddr, a, func(e setEntry, a netip.AddrPort) int { return e.b.addr.Compare(a) })
	if !ok {
		return setEntry{}, false
	}
	return s.byAddr[i], true
}

// backend returns the set's backend for a, or nil.
func (s *backendSet) backend(a netip.AddrPort) *backend {
	e, _ := s.entry(a)
	return e.b
}

// has reports whether a is one of the set's endpoints (not an extra).
func (s *backendSet) has(a netip.AddrPort) bool {
	e, ok := s.entry(a)
	return ok && e.inList
}

func newBackend(svc *service, a netip.AddrPort, e state.Endpoint) *backend {
	return &backend{addr: a, metric: svc.metric(a), local: e.IsLocal || a.Addr().IsLoopback()}
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
