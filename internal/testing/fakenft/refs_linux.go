//go:build linux

package fakenft

import (
	"fmt"

	"github.com/google/nftables/expr"
)

// exprRefs returns the chains an expression jumps or goes to and the sets it
// reads or updates.
func exprRefs(e expr.Any) (chainRef, setRef string) {
	switch x := e.(type) {
	case *expr.Verdict:
		if x.Kind == expr.VerdictJump || x.Kind == expr.VerdictGoto {
			return x.Chain, ""
		}
	case *expr.Lookup:
		return "", x.SetName
	case *expr.Dynset:
		return "", x.SetName
	}
	return "", ""
}

// checkRefs refuses a rule that jumps to a missing chain or uses a missing set.
func (tb *table) checkRefs(exprs []expr.Any) error {
	for _, e := range exprs {
		c, s := exprRefs(e)
		if c != "" && tb.chains[c] == nil {
			return fmt.Errorf("jump to chain %s: %w", c, errNotExist)
		}
		if s != "" && tb.sets[s] == nil {
			return fmt.Errorf("set %s: %w", s, errNotExist)
		}
	}
	return nil
}

// chainUser names a rule or map element that jumps to the chain, "" if none.
func (tb *table) chainUser(name string) string {
	for cn, c := range tb.chains {
		for _, r := range c.rules {
			for _, e := range r.Exprs {
				if ref, _ := exprRefs(e); ref == name {
					return "a rule of chain " + cn
				}
			}
		}
	}
	for sn, s := range tb.sets {
		for _, e := range s.elems {
			if e.VerdictData != nil && e.VerdictData.Chain == name {
				return "an element of map " + sn
			}
		}
	}
	return ""
}

// setUser names a rule that uses the set, "" if none.
func (tb *table) setUser(name string) string {
	for cn, c := range tb.chains {
		for _, r := range c.rules {
			for _, e := range r.Exprs {
				if _, ref := exprRefs(e); ref == name {
					return "a rule of chain " + cn
				}
			}
		}
	}
	return ""
}
