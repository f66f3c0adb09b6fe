package nftables

import "kproxy.dev/kproxy/internal/state"

// ruleset is the whole rendered content of one family's table, kept per owner so a
// sync can re-render and compare only what changed.
type ruleset struct {
	fam      family
	node     *fragment
	services map[state.ServicePortName]*fragment
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

// renderAll renders every ServicePort of snap; it is pure.
func renderAll(o renderOptions, snap *state.Snapshot) *ruleset {
	rs := &ruleset{fam: o.fam, node: renderNode(o), services: make(map[state.ServicePortName]*fragment, len(snap.Services))}
	for n, sp := range snap.Services {
		rs.services[n] = renderService(o, sp, snap.Categorize(n))
	}
	return rs
}

// ruleCount counts the rules and map elements of the whole table: on the shared
// path a Service is elements only, so both are what "rules" means here.
func (rs *ruleset) ruleCount() int {
	n := rs.node.ruleCount() + len(rs.node.elems)
	for _, fr := range rs.services {
		n += fr.ruleCount() + len(fr.elems)
	}
	return n
}
