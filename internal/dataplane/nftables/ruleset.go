package nftables

import (
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// ruleset is the whole rendered content of one family's table, kept per owner so a
// sync can re-render and compare only what changed. Totals are kept up to date by
// put and setNode, so a sync costs nothing per unchanged Service.
type ruleset struct {
	fam      family
	node     *fragment
	services map[state.ServicePortName]*fragment
	// rules counts rules and map elements; objects counts chains and sets.
	rules, objects int
}

func newRuleset(f family, node *fragment, size int) *ruleset {
	rs := &ruleset{fam: f, services: make(map[state.ServicePortName]*fragment, size)}
	rs.setNode(node)
	return rs
}

func (fr *fragment) weight() (rules, objects int) {
	if fr == nil {
		return 0, 0
	}
	return fr.ruleCount() + len(fr.elems), len(fr.chains) + len(fr.sets)
}

func (rs *ruleset) account(fr *fragment, sign int) {
	r, o := fr.weight()
	rs.rules += sign * r
	rs.objects += sign * o
}

func (rs *ruleset) setNode(fr *fragment) {
	rs.account(rs.node, -1)
	rs.node = fr
	rs.account(fr, 1)
}

// put replaces one ServicePort's fragment; nil removes it.
func (rs *ruleset) put(n state.ServicePortName, fr *fragment) {
	rs.account(rs.services[n], -1)
	delete(rs.services, n)
	if fr == nil {
		return
	}
	rs.services[n] = fr
	rs.account(fr, 1)
}

func (rs *ruleset) fragmentsInOrder() []*fragment {
	out := []*fragment{rs.node}
	names := make([]state.ServicePortName, 0, len(rs.services))
	for n := range rs.services {
		names = append(names, n)
	}
	state.SortNames(names)
	for _, n := range names {
		out = append(out, rs.services[n])
	}
	return out
}

// renderAll renders every ServicePort of the request's snapshot; it is pure.
func renderAll(o renderOptions, req *dataplane.Request) *ruleset {
	snap := req.Snapshot
	rs := newRuleset(o.fam, renderNode(o), snap.Len())
	for n, sp := range snap.All() {
		rs.put(n, renderService(o, sp, req.Endpoints(n)))
	}
	return rs
}

// ruleCount counts the rules and map elements of the whole table: on the shared
// path a Service is elements only, so both are what "rules" means here.
func (rs *ruleset) ruleCount() int { return rs.rules }

// fragmentsUnordered lists the node's fragment and every ServicePort's, in no
// particular order (for the self-check: no sort).
func (rs *ruleset) fragmentsUnordered() []*fragment {
	out := make([]*fragment, 0, len(rs.services)+1)
	out = append(out, rs.node)
	for _, fr := range rs.services {
		out = append(out, fr)
	}
	return out
}
