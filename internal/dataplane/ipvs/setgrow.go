//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// applySets writes d to the kernel's sets in one `ipset restore`, replacing each
// set d would fill past its maxelem by a larger one (renderGrow). p.sets and
// p.counts already hold the state after d. A set that cannot grow fails the
// sync, which is retried; it is logged once per size it was to grow to.
func (p *Proxier) applySets(ctx context.Context, d setDiff) error {
	plan := grow(d, p.counts, p.maxElem)
	texts := make(map[string]string, len(plan))
	names := make([]string, 0, len(plan))
	for name, sz := range plan {
		texts[name] = renderGrow(name, sz, p.sets.entries(name))
		names = append(names, name)
	}
	sort.Strings(names)
	p.written += len(d.Add) + len(d.Del)
	if err := p.k.IPSet.Restore(ctx, d.render(texts)); err != nil {
		if len(plan) == 0 {
			return fmt.Errorf("ipset restore: %w", err)
		}
		for _, name := range names {
			if p.growLogged[name] != plan[name].MaxElem {
				p.growLogged[name] = plan[name].MaxElem
				p.log.Error("ipvs: cannot grow ipset; retrying with the next sync", "set", name,
					"maxelem", p.maxElem[name], "newMaxelem", plan[name].MaxElem, "entries", p.counts[name], "err", err)
			}
		}
		return fmt.Errorf("ipset restore, growing %s: %w", strings.Join(names, ", "), err)
	}
	for _, name := range names {
		p.log.Info("ipvs: grew ipset", "set", name, "maxelem", p.maxElem[name],
			"newMaxelem", plan[name].MaxElem, "hashsize", plan[name].HashSize, "entries", p.counts[name])
		p.maxElem[name] = plan[name].MaxElem
		delete(p.growLogged, name)
	}
	return nil
}

// createSize is the size a set of the family is created with: the maxelem it has
// in the kernel if it exists (`create -exist` refuses any other), else room for
// its entries.
func (p *Proxier) createSize(name string) setSize {
	sz := sizeFor(p.counts[name])
	if m, ok := p.maxElem[name]; ok {
		sz.MaxElem = m
	}
	return sz
}
