package fakeipt

import (
	"sort"
	"strings"
)

// chain is one chain: a policy for built-in chains ("-" for user chains) and rules.
type chain struct {
	policy string
	rules  []rule
}

// rule is a spec in canonical form (what follows "-A NAME ") and the chain or
// target it jumps to.
type rule struct {
	spec, target string
}

func newRule(spec string) rule { return rule{spec: spec, target: ruleTarget(spec)} }

// table is one table's chains.
type table struct {
	chains map[string]*chain
}

func newTable(name string) *table {
	t := &table{chains: map[string]*chain{}}
	for _, c := range builtinChains[name] {
		t.chains[c] = &chain{policy: "ACCEPT"}
	}
	return t
}

func (t *table) clone() *table {
	out := &table{chains: make(map[string]*chain, len(t.chains))}
	for n, c := range t.chains {
		out.chains[n] = &chain{policy: c.policy, rules: append([]rule(nil), c.rules...)}
	}
	return out
}

// isBuiltin reports whether the chain is one of the table's built-in chains.
func isBuiltin(tbl, name string) bool {
	for _, c := range builtinChains[tbl] {
		if c == name {
			return true
		}
	}
	return false
}

// references counts the rules of the table that jump or go to target.
func (t *table) references(target string) int {
	n := 0
	for _, c := range t.chains {
		for _, r := range c.rules {
			if r.target == target {
				n++
			}
		}
	}
	return n
}

// save prints the table as iptables-save does.
func (t *table) save(name string) string {
	var b strings.Builder
	b.WriteString("*" + name + "\n")
	order := append([]string(nil), builtinChains[name]...)
	var user []string
	for n := range t.chains {
		if !isBuiltin(name, n) {
			user = append(user, n)
		}
	}
	sort.Strings(user)
	order = append(order, user...)
	for _, n := range order {
		b.WriteString(":" + n + " " + t.chains[n].policy + " [0:0]\n")
	}
	for _, n := range order {
		for _, r := range t.chains[n].rules {
			b.WriteString("-A " + n + " " + r.spec + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
