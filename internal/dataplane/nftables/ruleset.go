package nftables

import (
	"unique"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// ruleset is the rendered content of one family's table, kept per owner so a sync
// can re-render and compare only what changed. Totals are kept up to date by put
// and setNode, so a sync costs nothing per unchanged Service.
//
// The model a table sync keeps (tableSync.applied) holds only the fragments that
// cannot be rendered again from the snapshot they came from (see derivable):
// those with chains, sets, verdict elements or a slot layout, a few at most. A
// Service of the shared path or without endpoints is plain-set and data-map
// elements only, re-rendered from the applied snapshot when it changes or the
// self-check reads the table back (tableSync.oldFragment, eachFragment): at
// 100,000 Services x 5 endpoints that is ~1.4 million elements not kept.
type ruleset struct {
	fam      family
	node     *fragment
	services map[state.ServicePortName]*fragment
	// keepAll keeps every fragment (renderAll: the bench's script, tests).
	keepAll bool
	// rules counts rules and map elements; objects counts chains and sets; both
	// of every fragment put, kept or not.
	rules, objects int
}

func newRuleset(f family, node *fragment, size int) *ruleset {
	rs := &ruleset{fam: f, services: make(map[state.ServicePortName]*fragment, size)}
	rs.setNode(node)
	return rs
}

// derivable says fr is elements of the node's plain sets and data maps only: no
// chain, no set, no verdict, no slot layout (whose slot order may differ from a
// fresh render's). Rendering the ServicePort again from the same snapshot and
// options gives the same fragment, so the model need not keep it.
func (fr *fragment) derivable() bool {
	if fr == nil {
		return true
	}
	if len(fr.chains)+len(fr.sets) > 0 || fr.slots != nil {
		return false
	}
	for i := range fr.elems {
		if fr.elems[i].verdictH != (unique.Handle[string]{}) {
			return false
		}
	}
	return true
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

// put replaces one ServicePort's fragment old (nil: none; the kept one or, for a
// derivable one, the same rendered again) with fr (nil removes it).
func (rs *ruleset) put(n state.ServicePortName, old, fr *fragment) {
	rs.account(old, -1)
	delete(rs.services, n)
	if fr == nil {
		return
	}
	rs.account(fr, 1)
	if rs.keepAll || !fr.derivable() {
		rs.services[n] = fr
	}
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

// renderAll renders every ServicePort of the request's snapshot and keeps every
// fragment (the bench's script and tests; a sync renders as it goes, see
// tableSync.full); it is pure.
func renderAll(o renderOptions, req *dataplane.Request) *ruleset {
	snap := req.Snapshot
	rs := newRuleset(o.fam, renderNode(o), snap.Len())
	rs.keepAll = true
	for n, sp := range snap.All() {
		rs.put(n, nil, renderService(o, sp, req.Endpoints(n)))
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
