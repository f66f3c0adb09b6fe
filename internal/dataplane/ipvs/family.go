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
	if err := p.k.IPSet.Restore(ctx, renderCreate(v6)); err != nil {
		return fmt.Errorf("create ipsets (ipv6=%v): %w", v6, err)
	}
	text := renderRules(rulesOptions{V6: v6, MasqueradeAll: p.o.MasqueradeAll, ClusterCIDRs: p.o.ClusterCIDRs, MasqueradeBit: p.o.MasqueradeBit})
	if text != p.rules[i] {
		if err := p.k.Iptables.Restore(ctx, v6, text); err != nil {
			return fmt.Errorf("iptables-restore (ipv6=%v): %w", v6, err)
		}
		p.rules[i] = text
	}
	if err := ensureJumps(ctx, p.k.Iptables, v6); err != nil {
		return err
	}
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

// ensureJumps inserts the jump rules missing from the built-in chains. One
// iptables-save per family finds the present ones; a rule not found in its output
// is still checked with -C before it is inserted, so an unexpected save format can
// cost time but never duplicate a rule.
func ensureJumps(ctx context.Context, ipt Iptables, v6 bool) error {
	saved, _ := ipt.Save(ctx, v6)
	for _, j := range jumpRules {
		if strings.Contains(saved, j.saveLine()) {
			continue
		}
		if err := ipt.EnsureRule(ctx, v6, j.Table, j.Chain, j.Args); err != nil {
			return fmt.Errorf("jump to %s from %s/%s: %w", j.Args[len(j.Args)-1], j.Table, j.Chain, err)
		}
	}
	return nil
}

// saveLine is the rule as iptables-save prints it.
func (j jumpRule) saveLine() string {
	parts := []string{"-A", j.Chain}
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
	for _, sp := range snap.Services {
		for _, ip := range sp.ClusterIPs {
			if ip.Is6() {
				return true
			}
		}
	}
	return false
}
