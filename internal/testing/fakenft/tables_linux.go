//go:build linux

package fakenft

import (
	"maps"
	"slices"

	"github.com/google/nftables"
)

// Table is one table as a netlink dump would return it: what internal/trace's
// DecodeNetlink reads, so tests can evaluate packets against the fake.
type Table struct {
	Table    *nftables.Table
	Chains   []*nftables.Chain
	Rules    map[string][]*nftables.Rule
	Sets     []*nftables.Set
	Elements map[string][]nftables.SetElement
}

// Tables returns every table the fake holds, as netlink reads would.
func (k *Kernel) Tables() []Table {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Table
	for key, tb := range k.st.tables {
		t := &nftables.Table{Name: key.name, Family: key.family}
		nt := Table{Table: t, Rules: map[string][]*nftables.Rule{}, Elements: map[string][]nftables.SetElement{}}
		for _, name := range slices.Sorted(maps.Keys(tb.chains)) {
			c := tb.chains[name]
			nt.Chains = append(nt.Chains, &nftables.Chain{Name: name, Table: t, Hooknum: c.hook,
				Priority: c.priority, Type: c.chainType, Policy: c.policy})
			for _, r := range c.rules {
				cp := *r
				cp.Table, cp.Chain = t, &nftables.Chain{Name: name, Table: t}
				nt.Rules[name] = append(nt.Rules[name], &cp)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(tb.sets)) {
			s := tb.sets[name]
			meta := s.meta
			meta.Table = t
			nt.Sets = append(nt.Sets, &meta)
			for _, key := range slices.Sorted(maps.Keys(s.elems)) {
				nt.Elements[name] = append(nt.Elements[name], s.elems[key])
			}
		}
		out = append(out, nt)
	}
	return out
}
