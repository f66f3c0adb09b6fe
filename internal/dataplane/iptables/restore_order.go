package iptables

import "strings"

// A large restore (more than zeroCountersAbove lines in a table) writes each
// chain's declaration right before its rules, every chain after the chains its
// rules jump to. iptables-nft-restore 1.8.9 finds the chain of every -A line in a
// hash of 512 buckets that it walks newest-first, comparing names: with every
// declaration first, each of the rules walks past the chains declared after its
// own (on average n/1024 names at n chains, so the restore grows with the square
// of the chains: about a quarter of its CPU at 100,000 Services), and right after
// its declaration the chain is the first name of its bucket. The transaction is
// the same: the same chains are declared, with the same rules, in one COMMIT; a
// rule's jump target is declared before the rule (as the kernel requires), and
// rule deletions, replacements and insertions, which only touch chains this
// restore does not rewrite, follow the chains.

// writeInterleaved writes the declarations and rules of a large section: first
// the chains declared without rules (emptied, or removed at the end), then each
// chain with rules in blockOrder.
func (s *section) writeInterleaved(lw *lineWriter) {
	blocks := make(map[string]int, len(s.rules))
	for i, c := range s.rules {
		blocks[c.Name] = i
	}
	for _, c := range s.declare {
		if _, ok := blocks[c]; !ok {
			lw.declare(c)
		}
	}
	for _, i := range s.blockOrder(blocks) {
		c := s.rules[i]
		lw.declare(c.Name)
		lw.rules(c)
	}
}

// blockOrder orders the chains with rules so that each comes after the chains of
// this section its rules jump to (depth first from the first chain written, so
// a dispatch chain follows the Service chains it jumps to), keeping their order
// otherwise. blocks maps a chain's name to its index in s.rules.
func (s *section) blockOrder(blocks map[string]int) []int {
	const (
		unseen = iota
		visiting
		done
	)
	mark := make([]uint8, len(s.rules))
	order := make([]int, 0, len(s.rules))
	var visit func(i int)
	visit = func(i int) {
		if mark[i] != unseen {
			return // done, or a loop (the kernel rejects those anyway)
		}
		mark[i] = visiting
		for _, r := range s.rules[i].Rules {
			if j, ok := blocks[ruleJump(r)]; ok {
				visit(j)
			}
		}
		mark[i] = done
		order = append(order, i)
	}
	for i := range s.rules {
		visit(i)
	}
	return order
}

// ruleJump is the target of a rule spec's -j or -g ("KUBE-SVC-...", "DNAT"), ""
// without one. Rule specs are kproxy's own: the comment (a Service port's name,
// which holds no spaces) cannot contain " -j ".
func ruleJump(spec string) string {
	i := strings.LastIndex(spec, "-j ")
	if g := strings.LastIndex(spec, "-g "); g > i {
		i = g
	}
	if i < 0 || (i > 0 && spec[i-1] != ' ') {
		return ""
	}
	t := spec[i+3:]
	if sp := strings.IndexByte(t, ' '); sp >= 0 {
		t = t[:sp]
	}
	return t
}
