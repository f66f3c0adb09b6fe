package trace

import (
	"fmt"
	"strings"
)

// stmtText writes a decoded statement the way nft list would, for the steps of a
// ruleset read over netlink. Anonymous sets are written out inline.
func stmtText(t *nftTable, s nftStmt) string {
	lhs := make([]string, len(s.lhs))
	for i, sel := range s.lhs {
		lhs[i] = sel.text
	}
	l := strings.Join(lhs, " . ")
	switch s.op {
	case "match":
		op := " "
		if len(s.lhs) == 1 && s.lhs[0].hasMask {
			op = " == "
		}
		if s.neg {
			op = " != "
		}
		if s.setRef != "" {
			return l + op + setText(t, s.setRef)
		}
		var vals []string
		for _, lit := range s.lits {
			vals = append(vals, strings.Join(lit, " . "))
		}
		if len(vals) == 1 {
			return l + op + vals[0]
		}
		return l + op + "{ " + strings.Join(vals, ", ") + " }"
	case "vmap":
		return l + " vmap " + setText(t, s.setRef)
	case "verdict":
		return s.verdict
	case "dnat":
		if s.lhs != nil {
			return "dnat to " + l + " map " + setText(t, s.setRef)
		}
		return "dnat to " + s.dnatTo
	case "masq":
		return "masquerade"
	case "update":
		return "update @" + s.setRef + " { ip saddr }"
	case "markset":
		return "meta mark set " + markText(s)
	}
	return ""
}

func markText(s nftStmt) string {
	switch s.markOp {
	case "x":
		switch {
		case s.markMask == 0xffffffff:
			return fmt.Sprintf("meta mark ^ 0x%08x", s.markVal)
		case s.markMask == ^s.markVal&0xffffffff:
			return fmt.Sprintf("meta mark | 0x%08x", s.markVal)
		case s.markVal == 0:
			return fmt.Sprintf("meta mark & 0x%08x", s.markMask)
		}
		return fmt.Sprintf("meta mark & 0x%08x ^ 0x%08x", s.markMask, s.markVal)
	case "=":
		return fmt.Sprintf("0x%08x", s.markVal)
	}
	return fmt.Sprintf("meta mark %s 0x%08x", s.markOp, s.markVal)
}

func setText(t *nftTable, name string) string {
	set := t.sets[name]
	if set == nil || !strings.HasPrefix(name, "__") {
		return "@" + name
	}
	var els []string
	for i, e := range set.elements {
		if i == 8 {
			els = append(els, "...")
			break
		}
		txt := strings.Join(e.key, " . ")
		switch {
		case e.verdict != "":
			txt += " : " + e.verdict
		case e.data != nil:
			txt += " : " + strings.Join(e.data, " . ")
		}
		els = append(els, txt)
	}
	return "{ " + strings.Join(els, ", ") + " }"
}
