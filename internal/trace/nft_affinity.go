package trace

import (
	"fmt"
	"strings"
	"time"
)

// noteAffinitySet records a lookup in an affinity set (kube-proxy and kproxy both
// name them affinity-...): the set's elements are the clients pinned to one endpoint.
func (ev *nftEval) noteAffinitySet(t *nftTable, name string, member bool) {
	if !strings.HasPrefix(name, "affinity-") {
		return
	}
	a := Affinity{Store: fmt.Sprintf("set %s %s @%s", t.family, t.name, name), Pinned: member}
	if set := t.sets[name]; set != nil && set.timeout != "" {
		if d, err := time.ParseDuration(set.timeout); err == nil {
			a.Seconds = int(d.Seconds())
		}
	}
	ev.affinity(a)
}

// resolveAffinity names the endpoint behind each affinity set: the chain the
// lookup rule sends the client to, and that chain's DNAT.
func (ev *nftEval) resolveAffinity() {
	for i, a := range ev.aff {
		f := strings.Fields(a.Store)
		if len(f) != 4 || f[0] != "set" {
			continue
		}
		t := ev.table(f[1], f[2])
		if t == nil {
			continue
		}
		ev.aff[i].Endpoint = affinityEndpoint(t, strings.TrimPrefix(f[3], "@"))
	}
}

func affinityEndpoint(t *nftTable, set string) string {
	for _, c := range t.chains {
		for _, r := range c.rules {
			uses, target := false, ""
			for _, s := range r.stmts {
				if s.op == "match" && s.setRef == set {
					uses = true
				}
				if s.op == "verdict" {
					_, target, _ = strings.Cut(s.verdict, " ")
				}
			}
			if uses && t.chains[target] != nil {
				for _, r2 := range t.chains[target].rules {
					for _, s := range r2.stmts {
						if s.op == "dnat" && s.dnatTo != "" {
							return s.dnatTo
						}
					}
				}
			}
		}
	}
	return ""
}

func (ev *nftEval) table(family, name string) *nftTable {
	for _, t := range ev.rs.tables {
		if t.family == family && t.name == name {
			return t
		}
	}
	return nil
}

// noteIptablesNft warns about tables that iptables-nft wrote: their rules are
// xtables matches nft can only partly print, and iptables-save explains them better.
func (ev *nftEval) noteIptablesNft() {
	for _, t := range ev.rs.tables {
		for name := range t.chains {
			if strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "cali-") {
				ev.notes.add(fmt.Sprintf("table %s %s holds iptables rules (iptables-nft); "+
					"trace those with --mode iptables from iptables-save", t.family, t.name))
				break
			}
		}
	}
}
