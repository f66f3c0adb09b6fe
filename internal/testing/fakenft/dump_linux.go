//go:build linux

package fakenft

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Dump prints one table in a stable text form: chains by name, each with its base
// chain settings and its rules in order (one line of expressions per rule), then
// sets and maps by name with their elements sorted by key. A missing table prints
// as "". Two tables with the same content print the same.
func (k *Kernel) Dump(family nftables.TableFamily, name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	tb := k.st.tables[tableKey{family, name}]
	if tb == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s\n", familyName(family), name)
	for _, n := range slices.Sorted(maps.Keys(tb.chains)) {
		c := tb.chains[n]
		fmt.Fprintf(&b, "\tchain %s%s\n", n, c.baseText())
		for _, r := range c.rules {
			b.WriteString("\t\t" + RuleText(r.Exprs) + "\n")
		}
	}
	for _, n := range slices.Sorted(maps.Keys(tb.sets)) {
		s := tb.sets[n]
		fmt.Fprintf(&b, "\tset %s%s\n", n, setText(&s.meta))
		keys := slices.Sorted(maps.Keys(s.elems))
		for _, key := range keys {
			b.WriteString("\t\t" + elemText(s.elems[key]) + "\n")
		}
	}
	return b.String()
}

// Chains returns the names of the table's chains, sorted.
func (k *Kernel) Chains(family nftables.TableFamily, name string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if tb := k.st.tables[tableKey{family, name}]; tb != nil {
		return slices.Sorted(maps.Keys(tb.chains))
	}
	return nil
}

// Elements returns a set's elements as Dump prints them, sorted; nil if the set
// does not exist.
func (k *Kernel) Elements(family nftables.TableFamily, table, set string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	tb := k.st.tables[tableKey{family, table}]
	if tb == nil || tb.sets[set] == nil {
		return nil
	}
	out := []string{}
	for _, key := range slices.Sorted(maps.Keys(tb.sets[set].elems)) {
		out = append(out, elemText(tb.sets[set].elems[key]))
	}
	return out
}

func (c *chain) baseText() string {
	if c.hook == nil {
		return ""
	}
	s := fmt.Sprintf(" { type %s hook %d", c.chainType, *c.hook)
	if c.priority != nil {
		s += fmt.Sprintf(" priority %d", *c.priority)
	}
	if c.policy != nil {
		s += fmt.Sprintf(" policy %d", *c.policy)
	}
	return s + " }"
}

func setText(s *nftables.Set) string {
	var parts []string
	parts = append(parts, "key "+s.KeyType.Name)
	if s.IsMap {
		parts = append(parts, "map "+s.DataType.Name)
	}
	for _, f := range []struct {
		on   bool
		name string
	}{{s.Concatenation, "concat"}, {s.Dynamic, "dynamic"}, {s.HasTimeout, "timeout"}, {s.Interval, "interval"}, {s.Constant, "constant"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if s.Timeout != 0 {
		parts = append(parts, "timeout "+s.Timeout.String())
	}
	return " { " + strings.Join(parts, ", ") + " }"
}

// elemText prints an element: its key, and what it maps to.
func elemText(e nftables.SetElement) string {
	s := hex.EncodeToString(e.Key)
	if v := elemValue(e); v != "" {
		s += " : " + v
	}
	return s
}

func elemValue(e nftables.SetElement) string {
	if e.VerdictData != nil {
		return verdictText(e.VerdictData)
	}
	if len(e.Val) > 0 {
		return hex.EncodeToString(e.Val)
	}
	return ""
}

func verdictText(v *expr.Verdict) string {
	names := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop",
		expr.VerdictReturn: "return", expr.VerdictJump: "jump", expr.VerdictGoto: "goto",
		expr.VerdictContinue: "continue", expr.VerdictBreak: "break"}
	n, ok := names[v.Kind]
	if !ok {
		n = fmt.Sprintf("verdict(%d)", v.Kind)
	}
	if v.Chain != "" {
		n += " " + v.Chain
	}
	return n
}

// RuleText prints a rule's expressions on one line, each as its type and fields.
func RuleText(exprs []expr.Any) string {
	parts := make([]string, len(exprs))
	for i, e := range exprs {
		switch x := e.(type) {
		case *expr.Verdict:
			parts[i] = verdictText(x)
			continue
		case *expr.Dynset:
			// Its nested expressions are pointers: print them, not their addresses.
			c := *x
			c.Exprs = nil
			parts[i] = strings.TrimPrefix(fmt.Sprintf("Dynset%+v", &c), "Dynset&") + "[" + RuleText(x.Exprs) + "]"
			parts[i] = "Dynset" + parts[i]
			continue
		}
		t := strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.")
		parts[i] = t + strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
	}
	return strings.Join(parts, "; ")
}
