//go:build linux

package fakenft

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// op is one queued operation: what it says and what it does to a state.
type op struct {
	desc  string
	apply func(*state) error
}

// Conn queues operations like *nftables.Conn and applies them on Flush. It has the
// methods the nftables dataplane's connection seam needs.
type Conn struct {
	k       *Kernel
	pending []op
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprintf("family%d", f)
}

func keyOf(t *nftables.Table) tableKey { return tableKey{t.Family, t.Name} }

func tableDesc(t *nftables.Table) string { return familyName(t.Family) + " " + t.Name }

func (c *Conn) queue(desc string, apply func(*state) error) {
	c.pending = append(c.pending, op{desc: desc, apply: apply})
}

// lookupTable returns the table of an operation, or ENOENT.
func lookupTable(s *state, t *nftables.Table) (*table, error) {
	if t == nil {
		return nil, errInvalid
	}
	tb := s.tables[keyOf(t)]
	if tb == nil {
		return nil, fmt.Errorf("table %s: %w", tableDesc(t), errNotExist)
	}
	return tb, nil
}

// AddTable creates the table unless it exists.
func (c *Conn) AddTable(t *nftables.Table) *nftables.Table {
	k := keyOf(t)
	c.queue("add table "+tableDesc(t), func(s *state) error {
		if s.tables[k] == nil {
			s.tables[k] = &table{chains: map[string]*chain{}, sets: map[string]*set{}}
		}
		return nil
	})
	return t
}

// DelTable deletes the table with everything in it.
func (c *Conn) DelTable(t *nftables.Table) {
	k := keyOf(t)
	c.queue("delete table "+tableDesc(t), func(s *state) error {
		if s.tables[k] == nil {
			return errNotExist
		}
		delete(s.tables, k)
		return nil
	})
}

// AddChain creates the chain unless it exists.
func (c *Conn) AddChain(ch *nftables.Chain) *nftables.Chain {
	cp := *ch
	c.queue("add chain "+tableDesc(ch.Table)+" "+ch.Name, func(s *state) error {
		tb, err := lookupTable(s, cp.Table)
		if err != nil {
			return err
		}
		if tb.chains[cp.Name] == nil {
			tb.chains[cp.Name] = &chain{hook: cp.Hooknum, chainType: cp.Type, priority: cp.Priority, policy: cp.Policy}
		}
		return nil
	})
	return ch
}

func lookupChain(s *state, ch *nftables.Chain) (*table, *chain, error) {
	tb, err := lookupTable(s, ch.Table)
	if err != nil {
		return nil, nil, err
	}
	c := tb.chains[ch.Name]
	if c == nil {
		return nil, nil, fmt.Errorf("chain %s: %w", ch.Name, errNotExist)
	}
	return tb, c, nil
}

// FlushChain removes the chain's rules.
func (c *Conn) FlushChain(ch *nftables.Chain) {
	cp := *ch
	c.queue("flush chain "+tableDesc(ch.Table)+" "+ch.Name, func(s *state) error {
		_, chn, err := lookupChain(s, &cp)
		if err != nil {
			return err
		}
		chn.rules = nil
		return nil
	})
}

// DelChain deletes an empty chain nothing jumps to.
func (c *Conn) DelChain(ch *nftables.Chain) {
	cp := *ch
	c.queue("delete chain "+tableDesc(ch.Table)+" "+ch.Name, func(s *state) error {
		tb, chn, err := lookupChain(s, &cp)
		if err != nil {
			return err
		}
		if len(chn.rules) > 0 {
			return fmt.Errorf("chain %s has %d rules: %w", cp.Name, len(chn.rules), errBusy)
		}
		if by := tb.chainUser(cp.Name); by != "" {
			return fmt.Errorf("chain %s is used by %s: %w", cp.Name, by, errBusy)
		}
		delete(tb.chains, cp.Name)
		return nil
	})
}

// AddRule appends a rule to its chain; the chains it jumps to and the sets it
// looks up must exist.
func (c *Conn) AddRule(r *nftables.Rule) *nftables.Rule {
	cp := *r
	c.queue("add rule "+tableDesc(r.Table)+" "+r.Chain.Name, func(s *state) error {
		tb, chn, err := lookupChain(s, &nftables.Chain{Name: cp.Chain.Name, Table: cp.Table})
		if err != nil {
			return err
		}
		if err := tb.checkRefs(cp.Exprs); err != nil {
			return err
		}
		chn.rules = append(chn.rules, &cp)
		return nil
	})
	return r
}

// AddSet creates the set unless it exists, then adds vals.
func (c *Conn) AddSet(st *nftables.Set, vals []nftables.SetElement) error {
	meta := *st
	meta.Table = nil
	t := st.Table
	c.queue("add set "+tableDesc(t)+" "+st.Name, func(s *state) error {
		tb, err := lookupTable(s, t)
		if err != nil {
			return err
		}
		if tb.sets[meta.Name] == nil {
			tb.sets[meta.Name] = &set{meta: meta, elems: map[string]nftables.SetElement{}}
		}
		return nil
	})
	if len(vals) > 0 {
		return c.SetAddElements(st, vals)
	}
	return nil
}

func lookupSet(s *state, st *nftables.Set) (*table, *set, error) {
	tb, err := lookupTable(s, st.Table)
	if err != nil {
		return nil, nil, err
	}
	x := tb.sets[st.Name]
	if x == nil {
		return nil, nil, fmt.Errorf("set %s: %w", st.Name, errNotExist)
	}
	return tb, x, nil
}

// DelSet deletes a set no rule refers to.
func (c *Conn) DelSet(st *nftables.Set) {
	ref := nftables.Set{Table: st.Table, Name: st.Name}
	c.queue("delete set "+tableDesc(st.Table)+" "+st.Name, func(s *state) error {
		tb, _, err := lookupSet(s, &ref)
		if err != nil {
			return err
		}
		if by := tb.setUser(ref.Name); by != "" {
			return fmt.Errorf("set %s is used by %s: %w", ref.Name, by, errBusy)
		}
		delete(tb.sets, ref.Name)
		return nil
	})
}

// FlushSet removes every element of the set.
func (c *Conn) FlushSet(st *nftables.Set) {
	ref := nftables.Set{Table: st.Table, Name: st.Name}
	c.queue("flush set "+tableDesc(st.Table)+" "+st.Name, func(s *state) error {
		_, x, err := lookupSet(s, &ref)
		if err != nil {
			return err
		}
		x.elems = map[string]nftables.SetElement{}
		return nil
	})
}

// SetAddElements adds elements; re-adding an identical element is accepted, a key
// already mapped to something else is refused, as the kernel does without
// NLM_F_EXCL.
func (c *Conn) SetAddElements(st *nftables.Set, vals []nftables.SetElement) error {
	ref := nftables.Set{Table: st.Table, Name: st.Name}
	for _, v := range vals {
		e := v
		k := hex.EncodeToString(e.Key)
		c.queue("add element "+tableDesc(st.Table)+" "+st.Name+" "+elemText(e), func(s *state) error {
			tb, x, err := lookupSet(s, &ref)
			if err != nil {
				return err
			}
			if old, ok := x.elems[k]; ok {
				if elemValue(old) != elemValue(e) {
					return fmt.Errorf("element %s: %w", k, errExist)
				}
				return nil
			}
			if e.VerdictData != nil && e.VerdictData.Chain != "" && tb.chains[e.VerdictData.Chain] == nil {
				return fmt.Errorf("element %s: chain %s: %w", k, e.VerdictData.Chain, errNotExist)
			}
			x.elems[k] = e
			return nil
		})
	}
	return nil
}

// SetDeleteElements deletes elements; a missing one fails the transaction.
func (c *Conn) SetDeleteElements(st *nftables.Set, vals []nftables.SetElement) error {
	ref := nftables.Set{Table: st.Table, Name: st.Name}
	for _, v := range vals {
		k := hex.EncodeToString(v.Key)
		c.queue("delete element "+tableDesc(st.Table)+" "+st.Name+" "+k, func(s *state) error {
			_, x, err := lookupSet(s, &ref)
			if err != nil {
				return err
			}
			if _, ok := x.elems[k]; !ok {
				return fmt.Errorf("element %s: %w", k, errNotExist)
			}
			delete(x.elems, k)
			return nil
		})
	}
	return nil
}

// Flush applies the queued operations as one transaction and empties the queue.
func (c *Conn) Flush() error {
	ops := c.pending
	c.pending = nil
	return c.k.commit(ops)
}

// CloseLasting drops anything queued.
func (c *Conn) CloseLasting() error {
	c.pending = nil
	return nil
}

// ListTableOfFamily returns the table with its use count (chains plus sets, as the
// kernel counts it), or ENOENT.
func (c *Conn) ListTableOfFamily(name string, family nftables.TableFamily) (*nftables.Table, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	tb := c.k.st.tables[tableKey{family, name}]
	if tb == nil {
		return nil, errNotExist
	}
	return &nftables.Table{Name: name, Family: family, Use: uint32(len(tb.chains) + len(tb.sets))}, nil
}

// GetRules returns the rules of a chain, or ENOENT.
func (c *Conn) GetRules(t *nftables.Table, ch *nftables.Chain) ([]*nftables.Rule, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	_, chn, err := lookupChain(c.k.st, &nftables.Chain{Name: ch.Name, Table: t})
	if err != nil {
		return nil, err
	}
	out := make([]*nftables.Rule, len(chn.rules))
	for i, r := range chn.rules {
		cp := *r
		out[i] = &cp
	}
	return out, nil
}

// GetSetElements returns the elements of a set, or ENOENT.
func (c *Conn) GetSetElements(st *nftables.Set) ([]nftables.SetElement, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	tb := c.k.st.tables[tableKey{st.Table.Family, st.Table.Name}]
	if tb == nil || tb.sets[st.Name] == nil {
		return nil, errNotExist
	}
	out := make([]nftables.SetElement, 0, len(tb.sets[st.Name].elems))
	for _, e := range tb.sets[st.Name].elems {
		out = append(out, e)
	}
	return out, nil
}

// GenID returns the ruleset generation: the number of transactions committed.
func (c *Conn) GenID() (uint32, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	return c.k.gen, nil
}

// DumpRules calls each with every rule of the table, chains by name, with its
// expressions encoded as google/nftables sends them (a kernel lists the same
// expressions in another but equivalent encoding); ENOENT if the table is missing.
func (c *Conn) DumpRules(t *nftables.Table, each func(chain string, exprs []byte)) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	tb, err := lookupTable(c.k.st, t)
	if err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(tb.chains)) {
		for _, r := range tb.chains[n].rules {
			attrs := make([]netlink.Attribute, len(r.Exprs))
			for i, e := range r.Exprs {
				b, err := expr.Marshal(byte(t.Family), e)
				if err != nil {
					return err
				}
				attrs[i] = netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b}
			}
			list, err := netlink.MarshalAttributes(attrs)
			if err != nil {
				return err
			}
			each(n, list)
		}
	}
	return nil
}

// ListChainsOfTableFamily returns every chain of the family's tables, base chains
// with their hook, type, priority and policy.
func (c *Conn) ListChainsOfTableFamily(family nftables.TableFamily) ([]*nftables.Chain, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	var out []*nftables.Chain
	for k, tb := range c.k.st.tables {
		if k.family != family {
			continue
		}
		for _, n := range slices.Sorted(maps.Keys(tb.chains)) {
			ch := tb.chains[n]
			out = append(out, &nftables.Chain{Name: n, Table: &nftables.Table{Name: k.name, Family: family},
				Hooknum: ch.hook, Type: ch.chainType, Priority: ch.priority, Policy: ch.policy})
		}
	}
	return out, nil
}

// DumpSetElements calls each with every element of the set, or returns ENOENT.
func (c *Conn) DumpSetElements(st *nftables.Set, each func(e nftables.SetElement)) error {
	elems, err := c.GetSetElements(st)
	if err != nil {
		return err
	}
	for _, e := range elems {
		each(e)
	}
	return nil
}
