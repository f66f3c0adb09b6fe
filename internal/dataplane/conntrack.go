package dataplane

import (
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/state"
)

// cleanConntrack deletes, after a successful sync, the conntrack entries that would
// keep UDP and SCTP clients black-holed: flows NATed to an endpoint that is no
// longer reachable, every flow to a port that gained its first endpoint (recorded
// un-NATed while it had none), and every flow to a deleted Service's addresses.
// TCP clients notice a dead endpoint by themselves. Modes without kernel NAT have
// no Deleter and skip it.
func (c *Core) cleanConntrack(req *Request) {
	if c.o.Conntrack == nil {
		return
	}
	filters := staleFilters(c.prev, req)
	n, err := conntrack.Clean(c.o.Conntrack, filters)
	switch {
	case err != nil:
		c.log.Warn("conntrack cleanup", "err", err)
	case n > 0:
		c.log.Info("deleted stale conntrack entries", "count", n, "filters", len(filters))
	}
}

// staleFilters computes the conntrack filters for the ports req changed, against
// the previous successful snapshot (nil before the first sync: then every UDP port
// with endpoints counts as newly served, as in kube-proxy).
func staleFilters(prev *state.Snapshot, req *Request) []conntrack.Filter {
	var stale []state.StaleFlow
	var whole []*state.ServicePort
	for n := range req.Changed {
		if n.Protocol != v1.ProtocolUDP && n.Protocol != v1.ProtocolSCTP {
			continue
		}
		var before []state.Endpoint
		var prevSP *state.ServicePort
		if prev != nil {
			if prevSP = prev.Service(n); prevSP != nil {
				before = prev.Categorize(n).AllReachable
			}
		}
		cur := req.Snapshot.Service(n)
		if cur == nil {
			if prevSP != nil {
				whole = append(whole, prevSP)
			}
			continue
		}
		after := req.Endpoints(n).AllReachable
		if len(after) > 0 && len(before) == 0 {
			whole = append(whole, cur)
			continue
		}
		stale = append(stale, gone(prevSP, before, after)...)
	}
	return append(conntrack.FiltersFor(stale), conntrack.FiltersForNewlyServed(whole)...)
}

// gone lists the endpoints of before that are not in after.
func gone(sp *state.ServicePort, before, after []state.Endpoint) []state.StaleFlow {
	if len(before) == 0 {
		return nil
	}
	keep := make(map[string]bool, len(after))
	for _, e := range after {
		keep[e.String()] = true
	}
	var out []state.StaleFlow
	for _, e := range before {
		if !keep[e.String()] {
			out = append(out, state.StaleFlow{Port: sp, Endpoint: e})
		}
	}
	return out
}
