//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"strings"

	"kproxy.dev/kproxy/internal/state"
)

// ensureFamily creates the ipsets and loads the iptables rules of one IP family,
// once per full sync: IPv6 only when a Service uses it, so that an IPv4-only node
// never runs ip6tables.
func (p *Proxier) ensureFamily(ctx context.Context, v6 bool) error {
	i := familyIndex(v6)
	if p.ready[i] {
		return nil
	}
	if err := p.k.IPSet.Restore(ctx, renderCreate(v6, p.createSize)); err != nil {
		return fmt.Errorf("create ipsets (ipv6=%v): %w", v6, err)
	}
	for _, d := range setDefs {
		if name := familySetName(d.Name, v6); d.isHash() {
			p.maxElem[name] = p.createSize(name).MaxElem
		}
	}
	text := renderRules(rulesOptions{V6: v6, MasqueradeAll: p.o.MasqueradeAll, ClusterCIDRs: p.o.ClusterCIDRs, MasqueradeBit: p.o.MasqueradeBit})
	write := text
	if text == p.rules[i] {
		write = ""
	}
	if err := loadRules(ctx, p.k.Iptables, v6, write); err != nil {
		return err
	}
	p.rules[i] = text
	p.ready[i] = true
	return nil
}

// ensureFamilies readies the families of a ServicePort's addresses.
func (p *Proxier) ensureFamilies(ctx context.Context, m *portModel) error {
	for _, a := range m.Addrs {
		if a.Is6() && !p.ready[1] {
			return p.ensureFamily(ctx, true)
		}
	}
	return nil
}

// loadRules writes the rules (text; "" when they are loaded already) and inserts
// the jump rules missing from the built-in chains, with one iptables-save and one
// iptables-restore --noflush per family. The jumps iptables-save shows certainly
// absent (no rule of that chain jumps to that target in any form) go into the
// same restore as the rules, in jumpRules order as one by one. A rule whose chain
// jumps to its target in another form than expected, or every rule when
// iptables-save failed, is checked with -C before it is inserted, so an
// unexpected save format can cost time but never duplicate a rule. A cold sync
// thus runs two iptables processes, not 18 (restore, save, then `iptables -C` and
// `-I` per jump), each of which loads the whole ruleset.
func loadRules(ctx context.Context, ipt Iptables, v6 bool, text string) error {
	saved, err := ipt.Save(ctx, v6)
	var absent, unsure []jumpRule
	for _, j := range jumpRules {
		switch {
		case err == nil && strings.Contains(saved, j.saveLine()):
		case err == nil && !jumpsTo(saved, j):
			absent = append(absent, j)
		default:
			unsure = append(unsure, j)
		}
	}
	if text != "" || len(absent) > 0 {
		if err := ipt.Restore(ctx, v6, withJumps(text, absent)); err != nil {
			return fmt.Errorf("iptables-restore (ipv6=%v): %w", v6, err)
		}
	}
	for _, j := range unsure {
		if err := ipt.EnsureRule(ctx, v6, j.Table, j.Chain, j.Args); err != nil {
			return fmt.Errorf("jump to %s from %s/%s: %w", j.target(), j.Table, j.Chain, err)
		}
	}
	return nil
}

// withJumps adds to iptables-restore input (rules: table sections each ending
// in COMMIT, or "") lines inserting the jump rules at the top of their built-in
// chains, which restore --noflush leaves alone, not being declared: at the end of
// their table's section, after our chains they jump to are declared, or in a
// section of their own.
func withJumps(rules string, jumps []jumpRule) string {
	var b strings.Builder
	done := map[string]bool{}
	for _, sec := range strings.SplitAfter(rules, "COMMIT\n") {
		table, _, _ := strings.Cut(strings.TrimPrefix(sec, "*"), "\n")
		body, ok := strings.CutSuffix(sec, "COMMIT\n")
		if !ok || done[table] {
			b.WriteString(sec)
			continue
		}
		b.WriteString(body)
		b.WriteString(jumpLines(jumps, table))
		b.WriteString("COMMIT\n")
		done[table] = true
	}
	for _, table := range []string{"nat", "filter"} {
		if lines := jumpLines(jumps, table); !done[table] && lines != "" {
			b.WriteString("*" + table + "\n" + lines + "COMMIT\n")
		}
	}
	return b.String()
}

// jumpLines are the -I lines of the jumps of one table.
func jumpLines(jumps []jumpRule, table string) string {
	var b strings.Builder
	for _, j := range jumps {
		if j.Table == table {
			b.WriteString(j.line("-I"))
		}
	}
	return b.String()
}

// jumpsTo reports whether iptables-save output has a rule in j's chain jumping
// to j's target, whatever its matches.
func jumpsTo(saved string, j jumpRule) bool {
	for _, l := range strings.Split(saved, "\n") {
		if strings.HasPrefix(l, "-A "+j.Chain+" ") && strings.HasSuffix(strings.TrimSpace(l), "-j "+j.target()) {
			return true
		}
	}
	return false
}

func (j jumpRule) target() string { return j.Args[len(j.Args)-1] }

// saveLine is the rule as iptables-save prints it.
func (j jumpRule) saveLine() string { return j.line("-A") }

// line is the rule as an iptables-restore line with the operation op.
func (j jumpRule) line(op string) string {
	parts := []string{op, j.Chain}
	for _, a := range j.Args {
		if strings.Contains(a, " ") {
			a = `"` + a + `"`
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ") + "\n"
}

func familyIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

func hasIPv6(snap *state.Snapshot) bool {
	for _, sp := range snap.All() {
		for _, ip := range sp.ClusterIPs {
			if ip.Is6() {
				return true
			}
		}
	}
	return false
}
