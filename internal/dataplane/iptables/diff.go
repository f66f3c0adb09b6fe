package iptables

import (
	"slices"
	"sort"
	"unsafe"

	"kproxy.dev/kproxy/internal/state"
)

// fixedChainNames are the chains kproxy owns besides the per-Service ones.
var fixedChainNames = map[string]bool{
	chainServices: true, chainExternalServices: true, chainNodePorts: true,
	chainPostrouting: true, chainMarkMasq: true, chainForward: true,
	chainProxyFirewall: true, chainCanary: true, chainFirewall: true,
}

func ownedChain(name string) bool { return fixedChainNames[name] || isServiceChain(name) }

// fullDiff computes the restore that makes the kernel (as read by iptables-save)
// match the desired ruleset, touching only what differs: chains whose rules already
// match are left alone, so a periodic full sync or a restart rewrites nothing that
// did not change.
func fullDiff(r *Ruleset, kernel kernelState) *restoreBuilder {
	b := newRestoreBuilder()
	names := r.sortedServiceNames()
	disp := r.dispatchRules(names)
	isDispatch := map[chainRef]bool{}
	for _, ref := range r.Dispatch {
		isDispatch[ref] = true
		kt := kernel[ref.Table]
		have, ok := kt[ref.Name]
		diffDispatch(b.table(ref.Table), ref.Name, have, ok, disp[ref], len(r.Tail[ref]))
	}
	// Which chains are desired matters only for the owned chains the kernel holds;
	// a cold start holds none, so the set is built only when needed.
	owned := 0
	for _, t := range writeTables {
		for name := range kernel[t] {
			if ownedChain(name) {
				owned++
			}
		}
	}
	var desired map[chainRef]bool
	if owned > 0 {
		desired = make(map[chainRef]bool, owned)
	}
	want := func(c Chain) {
		if desired != nil {
			desired[chainRef{c.Table, c.Name}] = true
		}
		if have, ok := kernel[c.Table][c.Name]; !ok || !sameRules(have, c.Rules) {
			b.table(c.Table).writeChain(c.Name, c.Rules)
		}
	}
	for _, c := range r.Fixed {
		want(c)
	}
	for _, n := range names {
		for _, c := range r.Services[n].Chains {
			want(c)
		}
	}
	for _, t := range writeTables {
		kt := kernel[t]
		s := b.table(t)
		if _, ok := kt[chainCanary]; !ok {
			s.declareChain(chainCanary)
		}
		var stale []string
		for name := range kt {
			ref := chainRef{t, name}
			// KUBE-FIREWALL may be kubelet's: a sync that does not need it leaves it.
			if !desired[ref] && ownedChain(name) && !isDispatch[ref] && name != chainCanary && name != chainFirewall {
				stale = append(stale, name)
			}
		}
		sort.Strings(stale)
		for _, name := range stale {
			s.removeChain(name)
		}
	}
	if _, ok := kernel[tableMangle][chainCanary]; !ok {
		b.table(tableMangle).declareChain(chainCanary)
	}
	// Each missing jump is inserted first in its chain; going backwards keeps
	// them in the listed order.
	for i := len(r.Jumps) - 1; i >= 0; i-- {
		j := r.Jumps[i]
		if !hasJumpTo(kernel[j.Table][j.Chain], jumpTarget(j.Spec)) {
			b.table(j.Table).insertRule(j.Chain, j.Spec)
		}
	}
	return b
}

func jumpTarget(spec string) string {
	for i := len(spec) - 1; i >= 0; i-- {
		if spec[i] == ' ' {
			return spec[i+1:]
		}
	}
	return spec
}

// diffDispatch brings one shared chain to want. A few missing or extra rules are
// inserted or deleted one by one; a chain that is missing, has lost its tail, or
// differs a lot is rewritten whole.
func diffDispatch(s *section, chain string, have []string, exists bool, want []string, tail int) {
	if !exists || !tailMatches(have, want, tail) {
		s.writeChain(chain, want)
		return
	}
	count := make(map[string]int, len(want))
	for _, w := range want[:len(want)-tail] {
		count[w]++
	}
	var extra []string
	for _, h := range have[:len(have)-tail] {
		if count[h] > 0 {
			count[h]--
		} else {
			extra = append(extra, h)
		}
	}
	var missing []string
	for _, w := range want[:len(want)-tail] {
		if count[w] > 0 {
			count[w]--
			missing = append(missing, w)
		}
	}
	if len(extra)+len(missing) > 64 && len(extra)+len(missing) > len(want)/4 {
		s.writeChain(chain, want)
		return
	}
	for _, e := range extra {
		s.deleteRule(chain, e)
	}
	for _, m := range missing {
		s.insertRule(chain, m)
	}
}

func tailMatches(have, want []string, tail int) bool {
	if tail == 0 {
		return true
	}
	if len(have) < tail || len(want) < tail {
		return false
	}
	return sameRules(have[len(have)-tail:], want[len(want)-tail:])
}

// partialDiff computes the restore for the ServicePorts in next, given what the
// previous successful syncs wrote for them (applied). Only their own chains and
// their own rules in the shared chains are touched.
func partialDiff(applied, next map[state.ServicePortName]*ServiceRules) *restoreBuilder {
	b := newRestoreBuilder()
	names := make([]state.ServicePortName, 0, len(next))
	for n := range next {
		names = append(names, n)
	}
	state.SortNames(names)
	for _, n := range names {
		diffService(b, applied[n], next[n])
	}
	return b
}

func diffService(b *restoreBuilder, old, cur *ServiceRules) {
	if old == nil {
		old = &ServiceRules{}
	}
	if cur == nil {
		cur = &ServiceRules{}
	}
	oldChain := old.chainLookup()
	for _, c := range cur.Chains {
		have, ok := oldChain(c.Name)
		switch {
		case ok && sameChainRules(have, c.Rules):
		case ok && replaceInPlace(b.table(c.Table), c.Name, have, c.Rules):
		default:
			b.table(c.Table).writeChain(c.Name, c.Rules)
		}
	}
	curChain := cur.chainLookup()
	for _, c := range old.Chains {
		if _, kept := curChain(c.Name); !kept {
			b.table(c.Table).removeChain(c.Name)
		}
	}
	oldSet := map[DispatchRule]bool{}
	for _, d := range old.Dispatch {
		oldSet[d] = true
	}
	curSet := map[DispatchRule]bool{}
	for _, d := range cur.Dispatch {
		curSet[d] = true
		if !oldSet[d] {
			b.table(d.Table).insertRule(d.Chain, d.Spec)
		}
	}
	for _, d := range old.Dispatch {
		if !curSet[d] {
			b.table(d.Table).deleteRule(d.Chain, d.Spec)
		}
	}
}

// sameChainRules reports whether two renderings of a chain have the same rules:
// at once when they share them (a chain reused by the render).
func sameChainRules(a, b []string) bool {
	if len(a) == len(b) && (len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b)) {
		return true
	}
	return slices.Equal(a, b)
}

// chainLookup finds the port's chains by name: through the render's index when
// it kept one (render_reuse.go), else through a map built here.
func (sr *ServiceRules) chainLookup() func(string) ([]string, bool) {
	if r := sr.reuse; r != nil && r.chainAt != nil {
		return func(name string) ([]string, bool) {
			c, ok := r.chain(name)
			return c.Rules, ok
		}
	}
	m := make(map[string][]string, len(sr.Chains))
	for _, c := range sr.Chains {
		m[c.Name] = c.Rules
	}
	return func(name string) ([]string, bool) {
		rules, ok := m[name]
		return rules, ok
	}
}

// maxReplaces is the most rules of a chain a partial sync replaces one by one
// (-R) instead of rewriting the chain.
const maxReplaces = 8

// replaceInPlace replaces the rules that differ when a chain keeps its length and
// only a few rules changed: moving one endpoint of a Service with 10,000 endpoints
// then rewrites one rule of its KUBE-SVC chain, not 10,000. It reports whether it
// did.
func replaceInPlace(s *section, chain string, have, want []string) bool {
	if len(have) != len(want) || len(want) <= maxReplaces {
		return false
	}
	var diff []int
	for i := range want {
		if have[i] != want[i] {
			if diff = append(diff, i); len(diff) > maxReplaces {
				return false
			}
		}
	}
	for _, i := range diff {
		s.replaceRule(chain, i+1, want[i])
	}
	return true
}
