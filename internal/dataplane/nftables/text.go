package nftables

import (
	"fmt"
	"sort"
	"strings"
)

// Text renderings in `nft -f` syntax: the golden-test format, and what
// BaselineApply loads with one plain nft command.

func (f family) table() string { return f.name + " " + tableName }

func (h *hook) text() string {
	return fmt.Sprintf("type %s hook %s priority %d ;", h.chainType, h.hook, h.priority)
}

func (s *set) declText(f family) string {
	word := "set"
	if s.kind == kindIndexMap || s.kind == kindServiceKey || s.kind == kindPortKey || s.kind == kindSlotMap || s.kind == kindPortSlotMap {
		word = "map"
	}
	d := strings.ReplaceAll(s.def(f), "\n\t\t", " ; ")
	if s.kind == kindIndexMap {
		// nft shows an integer-keyed map by the expression that fills it.
		d = "typeof numgen inc mod 2 : verdict"
	}
	return fmt.Sprintf("add %s %s %s { %s ; }", word, f.table(), s.name, d)
}

// fragmentLines renders one fragment as nft commands: declarations, then chains and
// their rules, then elements, each group in a stable order.
func fragmentLines(f family, fr *fragment) []string {
	var out []string
	sets := append([]*set(nil), fr.sets...)
	sort.Slice(sets, func(i, j int) bool { return sets[i].name < sets[j].name })
	for _, s := range sets {
		out = append(out, s.declText(f))
	}
	chains := append([]*chain(nil), fr.chains...)
	sort.SliceStable(chains, func(i, j int) bool { return chains[i].name < chains[j].name })
	for _, c := range chains {
		if c.base != nil {
			out = append(out, fmt.Sprintf("add chain %s %s { %s }", f.table(), c.name, c.base.text()))
		} else {
			out = append(out, fmt.Sprintf("add chain %s %s", f.table(), c.name))
		}
	}
	for _, c := range chains {
		for _, r := range c.rules {
			out = append(out, fmt.Sprintf("add rule %s %s %s", f.table(), c.name, r.text()))
		}
	}
	es := append([]elem(nil), fr.elems...)
	sortElems(es)
	for _, e := range es {
		out = append(out, fmt.Sprintf("add element %s %s { %s }", f.table(), e.set(), e.text()))
	}
	return out
}

// scriptText renders a whole table as one nft script that replaces the table.
func scriptText(rs *ruleset) string {
	var b strings.Builder
	f := rs.fam
	fmt.Fprintf(&b, "add table %s\ndelete table %s\nadd table %s\n", f.table(), f.table(), f.table())
	frs := rs.fragmentsInOrder()
	// Declarations and chains first, so that rules and elements can refer to any.
	var rules, elems []string
	for _, fr := range frs {
		for _, l := range fragmentLines(f, fr) {
			switch {
			case strings.HasPrefix(l, "add rule"):
				rules = append(rules, l)
			case strings.HasPrefix(l, "add element"):
				elems = append(elems, l)
			default:
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
	}
	for _, l := range append(rules, elems...) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
