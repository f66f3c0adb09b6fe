//go:build linux

package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The self-check (dataplane.Checker) in three steps:
//
//  1. The gate. nf_tables numbers every committed transaction of the network
//     namespace (the ruleset generation). After each Apply, kproxy records the
//     generation if its own commits explain every step since the last state it
//     knows to be intact. A check that finds the same generation knows nothing was
//     committed since, by anyone: one tiny netlink request, nothing else.
//  2. The event watch (watch_linux.go), when the generation moved: if every
//     commit since the gate's was announced and none named kproxy's tables,
//     they were another firewall user's, and the gate moves on.
//  3. The digest, when the watch cannot tell or a commit named kproxy's tables:
//     kproxy's tables are read back, every rule (one dump per table) and
//     the elements of every set, and compared with what kproxy applied. Intact, the
//     new generation becomes the gate's; otherwise the core repairs with a full sync.

// genGate is the ruleset generation at which kproxy's tables were last known to
// hold exactly what it applied.
type genGate struct {
	gen   uint32
	known bool
}

// generation reads the ruleset generation on the first table sync's connection
// (the generation is the namespace's, not a table's).
func (p *Proxier) generation() (uint32, error) {
	b, err := p.tables[0].batch()
	if err != nil {
		return 0, err
	}
	return b.conn.GenID()
}

// afterApply moves the gate after an Apply that started at generation g0, made
// commits transactions and ended at g1. The gate holds only if nothing but these
// commits happened since the last intact state: the generation moved by exactly
// commits, from the gate's (or every table was just rewritten whole).
func (p *Proxier) afterApply(g0, g1 uint32, commits int, allFull, ok bool) {
	trusted := ok && g1 == g0+uint32(commits) && (allFull || (p.gate.known && p.gate.gen == g0))
	p.gate = genGate{gen: g1, known: trusted}
}

// Damaged implements dataplane.Checker: unchanged generation, nothing to do;
// otherwise each table is compared with what kproxy applied (tableSync.intact).
func (p *Proxier) Damaged(ctx context.Context) (bool, error) {
	applied := false
	for _, t := range p.tables {
		applied = applied || t.applied != nil
	}
	if !applied {
		return false, nil
	}
	p.watchTables() // restarts a watch that stopped
	gen, err := p.generation()
	if err != nil {
		p.tables[0].closeConn()
		return true, err
	}
	if p.gate.known && p.gate.gen == gen {
		p.metrics.checks.WithLabelValues("unchanged").Inc()
		return false, nil
	}
	// Every commit since the gate's was announced and none named kproxy's tables:
	// another firewall user's, nothing to read.
	if p.gate.known && p.watch.untouched(p.gate.gen, gen) {
		p.gate.gen = gen
		p.metrics.checks.WithLabelValues("other-tables").Inc()
		return false, nil
	}
	for _, t := range p.tables {
		if t.applied == nil {
			continue
		}
		why, err := t.intact()
		if err != nil || why != "" {
			t.closeConn() // a full sync follows: start it on a fresh socket
			p.gate.known = false
			p.metrics.checks.WithLabelValues("damaged").Inc()
			p.log.Info("nftables table changed outside kproxy or unreadable", "table", t.fam.table(), "change", why, "err", err)
			return true, err
		}
	}
	// Read before the digest: a commit during it moves the generation past gen, and
	// the next check digests again.
	p.gate = genGate{gen: gen, known: true}
	p.metrics.checks.WithLabelValues("verified").Inc()
	return false, nil
}

// intact compares the kernel's table with what kproxy applied: the table exists
// with the chains and sets kproxy left in it (base chains as declared), every
// chain holds exactly the rules
// kproxy wrote (no chain of rules kproxy does not know), and every set and map
// (but the datapath-filled affinity sets) exactly its elements. It returns what
// differs first, "" when nothing does.
func (t *tableSync) intact() (string, error) {
	// The lasting connection: a one-off one would wait on close (see conn).
	b, err := t.batch()
	if err != nil {
		return "", err
	}
	tbl, err := b.conn.ListTableOfFamily(tableName, b.table.Family)
	if errors.Is(err, os.ErrNotExist) || (err != nil && isENOENT(err)) {
		return "table missing", nil
	}
	if err != nil {
		return "", err
	}
	// google/nftables v0.3.0 decodes NFTA_TABLE_USE in host order; the kernel
	// sends it big-endian. Accept either reading.
	if want := uint32(t.expectedUse()); tbl.Use != want && bits.ReverseBytes32(tbl.Use) != want {
		return fmt.Sprintf("%d chains and sets, want %d", bits.ReverseBytes32(tbl.Use), want), nil
	}
	if why, err := t.chainsIntact(b, tbl); err != nil || why != "" {
		return why, err
	}
	if why, err := t.rulesIntact(b.conn, tbl); err != nil || why != "" {
		return why, err
	}
	return t.elementsIntact(b, tbl)
}

// chainsIntact lists the family's chains once: kproxy's table must hold exactly
// its chains (the stale ones included), each base chain with its hook, priority,
// type and policy.
func (t *tableSync) chainsIntact(b *batch, tbl *nftables.Table) (string, error) {
	listed, err := b.conn.ListChainsOfTableFamily(tbl.Family)
	if err != nil {
		return "", err
	}
	got := map[string]*nftables.Chain{}
	for _, c := range listed {
		if c.Table != nil && c.Table.Name == tableName {
			got[c.Name] = c
		}
	}
	want := len(t.staleChains)
	for name := range t.staleChains {
		if got[name] == nil {
			return "chain " + name + " missing", nil
		}
	}
	for _, fr := range t.applied.fragmentsUnordered() {
		for _, c := range fr.chains {
			want++
			g := got[c.name]
			if g == nil {
				return "chain " + c.name + " missing", nil
			}
			if chainDecl(g) != chainDecl(b.nfChain(c)) {
				return "chain " + c.name + " is " + chainDecl(g) + ", want " + chainDecl(b.nfChain(c)), nil
			}
		}
	}
	if len(got) != want {
		return fmt.Sprintf("%d chains, want %d", len(got), want), nil
	}
	return "", nil
}

// chainDecl is a chain's hook, priority, type and policy; "" for a regular chain.
func chainDecl(c *nftables.Chain) string {
	if c.Hooknum == nil {
		return ""
	}
	d := fmt.Sprintf("type %s hook %d", c.Type, *c.Hooknum)
	if c.Priority != nil {
		d += fmt.Sprintf(" priority %d", *c.Priority)
	}
	if c.Policy != nil {
		d += fmt.Sprintf(" policy %d", *c.Policy)
	}
	return d
}

// rulesIntact dumps every rule of the table once and compares each chain's digest
// with the applied one's. The kernel lists a rule with other attribute order,
// flags and defaults than were sent, so both sides are digested in canonical form
// (canonicalExprs).
func (t *tableSync) rulesIntact(conn nfConn, tbl *nftables.Table) (string, error) {
	fam := byte(tbl.Family)
	got := map[string]*ruleSum{}
	var derr error
	err := conn.DumpRules(tbl, func(chain string, exprs []byte) {
		c, err := canonicalExprs(fam, exprs)
		if err != nil {
			derr = err
			return
		}
		s := got[chain]
		if s == nil {
			s = &ruleSum{}
			got[chain] = s
		}
		s.add(c)
	})
	if err = errors.Join(err, derr); err != nil {
		return "", err
	}
	want := 0
	for _, fr := range t.applied.fragmentsUnordered() {
		for _, c := range fr.chains {
			s, err := c.kernelSum(fam)
			if err != nil {
				return "", err
			}
			if s.n == 0 {
				continue // listed by no rule
			}
			want++
			if g := got[c.name]; g == nil || g.n != s.n || g.h != s.h {
				return "rules of chain " + c.name, nil
			}
		}
	}
	// Stale chains were flushed: any chain with rules not accounted for is foreign.
	if len(got) != want {
		return fmt.Sprintf("%d chains with rules, want %d", len(got), want), nil
	}
	return "", nil
}

// kernelSum is the digest of the chain's rules as the kernel lists them, computed
// on first use and kept with the (immutable) rendered chain.
func (c *chain) kernelSum(fam byte) (ruleSum, error) {
	if c.sum.done {
		return c.sum, nil
	}
	var s ruleSum
	for _, r := range c.rules {
		list, err := exprList(fam, r)
		if err != nil {
			return s, fmt.Errorf("chain %s: %w", c.name, err)
		}
		canon, err := canonicalExprs(fam, list)
		if err != nil {
			return s, fmt.Errorf("chain %s: %w", c.name, err)
		}
		s.add(canon)
	}
	s.done = true
	c.sum = s
	return s, nil
}

// exprList encodes a rule's expressions as a NEWRULE message carries them.
func exprList(fam byte, r rule) ([]byte, error) {
	exprs, err := ruleExprs(r)
	if err != nil {
		return nil, err
	}
	attrs := make([]netlink.Attribute, len(exprs))
	for i, e := range exprs {
		b, err := expr.Marshal(fam, e)
		if err != nil {
			return nil, err
		}
		attrs[i] = netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b}
	}
	return netlink.MarshalAttributes(attrs)
}

// elemSum digests a set's elements in any order: their count and the sum of their
// hashes.
type elemSum struct {
	n int
	h uint64
}

func (s *elemSum) add(h uint64) { s.n++; s.h += h }

// elementsIntact reads every set and map kproxy filled and compares its elements,
// keys and values, with the applied ones. A key several owners render with
// different values (two Services claiming one external IP) holds whichever owner
// added it first: any owner's value is accepted.
func (t *tableSync) elementsIntact(b *batch, tbl *nftables.Table) (string, error) {
	want := map[string]*elemSum{}
	sets := map[string]*set{}
	// Derivable fragments (rendered again by eachFragment) have no sets.
	for _, fr := range t.applied.fragmentsUnordered() {
		for _, s := range fr.sets {
			if s.kind != kindAffinity { // the datapath adds these elements itself
				sets[s.name] = s
				want[s.name] = &elemSum{}
			}
		}
	}
	// Keyed by a hash of set and key: no string per element.
	values := make(map[uint64]uint64, t.applied.rules) // set|key -> value hash of the first owner
	// Keys owners render with different values: any owner's value is right.
	ambiguous := map[uint64]map[uint64]bool{}
	err := t.eachFragment(func(fr *fragment) error {
		for _, e := range fr.elems {
			s := want[e.set()]
			ne, err := b.nfElem(e)
			if err != nil {
				return err
			}
			k := fnvAdd(fnvAdd(fnvBasis, []byte(e.set())), ne.Key)
			v := valueHash(ne)
			if old, seen := values[k]; seen {
				if old != v && ambiguous[k] == nil {
					// Sum this key alone: take back the first owner's value.
					ambiguous[k] = map[uint64]bool{old: true}
					if s != nil {
						s.h += elemHash(ne, true) - elemHashOf(ne.Key, false, old)
					}
				}
				if ambiguous[k] != nil {
					ambiguous[k][v] = true
				}
				continue
			}
			values[k] = v
			if s == nil {
				continue
			}
			s.add(elemHash(ne, false))
			if end, ok := intervalEnd(e); ok {
				s.add(elemHash(end, false))
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	for name, s := range sets {
		ns := b.nfSet(s)
		ns.Table = tbl
		var got elemSum
		foreign := false
		err := b.conn.DumpSetElements(ns, func(ne nftables.SetElement) {
			var allowed map[uint64]bool
			if len(ambiguous) > 0 {
				allowed = ambiguous[fnvAdd(fnvAdd(fnvBasis, []byte(name)), ne.Key)]
			}
			if allowed != nil && !allowed[valueHash(ne)] {
				foreign = true
			}
			got.add(elemHash(ne, allowed != nil))
		})
		if isENOENT(err) {
			return "set " + name + " missing", nil
		}
		if err != nil {
			return "", err
		}
		if foreign {
			return "elements of set " + name + ": a shared key holds no owner's value", nil
		}
		if got != *want[name] {
			return fmt.Sprintf("elements of set %s (%d, want %d)", name, got.n, want[name].n), nil
		}
	}
	return "", nil
}

// elemHash hashes an element's key, interval-end flag and, unless keyOnly, its
// value (data or verdict).
func elemHash(e nftables.SetElement, keyOnly bool) uint64 {
	if keyOnly {
		return elemHashOf(e.Key, e.IntervalEnd, 0)
	}
	return elemHashOf(e.Key, e.IntervalEnd, valueHash(e))
}

func elemHashOf(key []byte, end bool, value uint64) uint64 {
	h := fnvAdd(fnvBasis, key)
	if end {
		h = fnvAdd(h, []byte{1})
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], value)
	return fnvAdd(h^0xff, v[:])
}

func valueHash(e nftables.SetElement) uint64 {
	h := fnvAdd(fnvBasis, e.Val)
	if v := e.VerdictData; v != nil {
		var k [4]byte
		binary.BigEndian.PutUint32(k[:], uint32(v.Kind))
		h = fnvAdd(h^0xfe, k[:])
		h = fnvAdd(h, []byte(v.Chain))
	}
	return h
}

func (t *tableSync) expectedUse() int {
	return len(t.staleChains) + len(t.staleSets) + t.applied.objects
}

// withVerdict decodes a verdict map element's value, the kernel's
// NFTA_VERDICT_CODE and _CHAIN held in Val.
func withVerdict(e nftables.SetElement) (nftables.SetElement, error) {
	if e.VerdictData != nil || len(e.Val) == 0 {
		return e, nil
	}
	ad, err := netlink.NewAttributeDecoder(e.Val)
	if err != nil {
		return e, err
	}
	ad.ByteOrder = binary.BigEndian
	v := &expr.Verdict{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			v.Kind = expr.VerdictKind(int32(ad.Uint32()))
		case unix.NFTA_VERDICT_CHAIN:
			v.Chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return e, err
	}
	e.Val, e.VerdictData = nil, v
	return e, nil
}
