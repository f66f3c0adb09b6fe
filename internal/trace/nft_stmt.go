package trace

import (
	"fmt"
	"net/netip"
	"strings"
)

// Statement evaluation: what one statement of a rule does to a branch.

func (ev *nftEval) stmt(c *nftChain, r *nftRule, s nftStmt, f *flow) []nftOut {
	switch s.op {
	case "passive":
		return []nftOut{{f: f}}
	case "verdict":
		return []nftOut{{f: f, verdict: s.verdict}}
	case "masq":
		f.masq = true
		return []nftOut{{f: f, verdict: "accept", action: "masquerade (source NAT)"}}
	case "markset":
		switch s.markOp {
		case "|":
			f.mark |= uint32(s.markVal)
		case "^":
			f.mark ^= uint32(s.markVal)
		case "&":
			f.mark &= uint32(s.markVal)
		case "x":
			f.mark = f.mark&uint32(s.markMask) ^ uint32(s.markVal)
		default:
			f.mark = uint32(s.markVal)
		}
		return []nftOut{{f: f, action: fmt.Sprintf("mark now %#x", f.mark)}}
	case "update":
		return []nftOut{{f: f, action: "records the client in @" + s.setRef + " for affinity"}}
	case "dnat":
		if s.lhs == nil {
			return []nftOut{ev.dnatLiteral(r, s.dnatTo, f)}
		}
	}
	for _, sel := range s.lhs {
		if sel.kind == "numgen" && !sel.random {
			ev.notes.add("numgen inc: new connections rotate over the candidates in turn (round robin); " +
				"the probabilities are shares over many connections")
		}
	}
	combos, ok, why := ev.combos(s.lhs, f)
	if !ok {
		return []nftOut{{f: f, miss: true}}
	}
	if why != "" {
		ev.notes.add(fmt.Sprintf("line %d (%s): %s; the rule is assumed not to match", r.line, c.name, why))
		return []nftOut{{f: f, miss: true}}
	}
	elems, err := ev.elements(c.table, s)
	if err != nil {
		ev.notes.add(fmt.Sprintf("line %d (%s): %v; the rule is assumed not to match", r.line, c.name, err))
		return []nftOut{{f: f, miss: true}}
	}
	return ev.split(f, combos, func(key []nftVal) nftOut {
		return ev.outcome(c, s, key, elems, f)
	})
}

// outcome is the result of statement s for one value of its concatenation.
func (ev *nftEval) outcome(c *nftChain, s nftStmt, key []nftVal, elems []nftElement, f *flow) nftOut {
	switch s.op {
	case "match":
		m := false
		if elems != nil || s.setRef != "" {
			m = ev.find(c.table, s, elems, key) != nil
			ev.noteAffinitySet(c.table, s.setRef, m)
		} else {
			for _, l := range s.lits {
				m = m || matchKey(key, l)
			}
		}
		return nftOut{miss: m == s.neg}
	case "vmap":
		e := ev.find(c.table, s, elems, key)
		if e == nil || e.verdict == "" {
			return nftOut{miss: true}
		}
		return nftOut{verdict: e.verdict, action: fmt.Sprintf("element %s : %s", keyText(key), e.verdict)}
	case "dnat":
		e := ev.find(c.table, s, elems, key)
		if e == nil {
			return nftOut{miss: true}
		}
		to := strings.Join(e.data, ":")
		if len(e.data) == 1 {
			to = e.data[0]
		}
		return nftOut{verdict: "dnat " + to, action: fmt.Sprintf("element %s : %s", keyText(key), strings.Join(e.data, " . "))}
	}
	return nftOut{miss: true}
}

// split groups the combos by outcome and forks f once per distinct outcome.
func (ev *nftEval) split(f *flow, combos []combo, out func([]nftVal) nftOut) []nftOut {
	type group struct {
		o      nftOut
		weight float64
		hashed bool
	}
	var groups []*group
	idx := map[string]*group{}
	for _, c := range combos {
		o := out(c.key)
		k := fmt.Sprint(o.miss, o.verdict)
		g := idx[k]
		if g == nil {
			g = &group{o: o}
			idx[k] = g
			groups = append(groups, g)
		} else if g.o.action != o.action && !strings.HasSuffix(g.o.action, "(and others)") {
			g.o.action += " (and others)"
		}
		g.weight += c.weight
		g.hashed = g.hashed || c.hashed
	}
	forking := len(groups) > 1 && ev.canFork()
	if !forking {
		groups = groups[:1]
	}
	var res []nftOut
	for _, g := range groups {
		o := g.o
		o.f = f
		if forking {
			o.f = f.fork(g.weight)
			o.f.chance = g.weight
			if g.hashed {
				ev.notes.add("the endpoint is chosen by a hash of the client's address (jhash): one client " +
					"always gets the same one; the probabilities are the shares over many clients")
			}
		}
		if strings.HasPrefix(o.verdict, "dnat ") {
			action := o.action
			o = ev.dnatLiteral(nil, strings.TrimPrefix(o.verdict, "dnat "), o.f)
			o.action = action + " -> DNAT to " + o.f.dnat.String()
		}
		res = append(res, o)
	}
	return res
}

func (ev *nftEval) dnatLiteral(r *nftRule, to string, f *flow) nftOut {
	ap, err := netip.ParseAddrPort(to)
	if err != nil {
		a, err2 := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(to, "["), "]"))
		if err2 != nil {
			line := 0
			if r != nil {
				line = r.line
			}
			ev.notes.add(fmt.Sprintf("line %d: dnat to %q not understood; treated as accept", line, to))
			return nftOut{f: f, verdict: "accept"}
		}
		ap = netip.AddrPortFrom(a, f.dport)
	}
	f.applyDNAT(ap)
	return nftOut{f: f, verdict: "accept", action: "DNAT to " + ap.String()}
}

func (ev *nftEval) elements(t *nftTable, s nftStmt) ([]nftElement, error) {
	if s.setRef == "" {
		return s.anon, nil
	}
	set := t.sets[s.setRef]
	if set == nil {
		return nil, fmt.Errorf("set @%s is not in the ruleset", s.setRef)
	}
	if set.elements == nil {
		return []nftElement{}, nil
	}
	return set.elements, nil
}

func findElement(elems []nftElement, key []nftVal) *nftElement {
	for i := range elems {
		if matchKey(key, elems[i].key) {
			return &elems[i]
		}
	}
	return nil
}

// find looks key up in the statement's set: through an index for named sets,
// by scanning anonymous ones (they are small).
func (ev *nftEval) find(t *nftTable, s nftStmt, elems []nftElement, key []nftVal) *nftElement {
	set := t.sets[s.setRef]
	if s.setRef == "" || set == nil || len(elems) < 64 {
		return findElement(elems, key)
	}
	if ev.index == nil {
		ev.index = map[*nftSet]*elemIndex{}
	}
	ix := ev.index[set]
	if ix == nil {
		kinds := make([]string, len(key))
		for i, v := range key {
			kinds[i] = v.kind
		}
		ix = buildIndex(elems, kinds)
		ev.index[set] = ix
	}
	return ix.find(key)
}
