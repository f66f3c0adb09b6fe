package iptables

import "kproxy.dev/kproxy/internal/state"

// Tables kproxy writes.
const (
	tableFilter = "filter"
	tableNAT    = "nat"
	tableMangle = "mangle"
)

// writeTables is the order tables are written in one restore.
var writeTables = []string{tableFilter, tableNAT}

// Chain is one chain kproxy owns, with its rules as iptables-save prints them after
// "-A NAME " (called specs here).
type Chain struct {
	Table string
	Name  string
	Rules []string
}

// DispatchRule is one rule a ServicePort adds to a shared chain (KUBE-SERVICES,
// KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL). The order of these
// rules does not matter, because each matches its own address, protocol and port:
// that is what lets a partial sync insert or delete single rules instead of
// rewriting the chain.
type DispatchRule struct {
	Table string
	Chain string
	Spec  string
}

// ServiceRules is everything one ServicePort contributes.
type ServiceRules struct {
	// Chains are the port's own chains (KUBE-SVC/SVL/EXT/FW/SEP), all in nat.
	Chains   []Chain
	Dispatch []DispatchRule
	// reuse, for a port with more than bucketAbove endpoints, lets the next
	// partial sync's render take its unchanged chains from these (render_reuse.go).
	reuse *renderReuse
	// endpoints is the port's endpoint count in the snapshot it was rendered
	// from (both families), which the Proxier sums to decide foldWanted.
	endpoints int
}

// ruleCount counts rules by table.
func (s *ServiceRules) ruleCount(into map[string]int, sign int) {
	if s == nil {
		return
	}
	for _, c := range s.Chains {
		into[c.Table] += sign * len(c.Rules)
	}
	for _, d := range s.Dispatch {
		into[d.Table] += sign
	}
}

// chainRef names a chain in a table.
type chainRef struct{ Table, Name string }

// Jump is a rule in a built-in chain that leads into kproxy's chains.
type Jump struct {
	Table string
	Chain string // PREROUTING, INPUT, ...
	Spec  string
}

// Ruleset is the whole desired state: the output of Render.
type Ruleset struct {
	// Fixed are the chains with fixed content (KUBE-POSTROUTING, KUBE-MARK-MASQ, ...).
	Fixed []Chain
	// Dispatch are the shared chains ServicePorts add rules to; Tail holds rules that
	// must stay last in them (the NodePort jump at the end of nat KUBE-SERVICES).
	Dispatch []chainRef
	Tail     map[chainRef][]string
	Services map[state.ServicePortName]*ServiceRules
	Jumps    []Jump
}

// RuleCounts returns the number of rules kproxy owns in each table.
func (r *Ruleset) RuleCounts() map[string]int {
	out := map[string]int{tableFilter: 0, tableNAT: 0}
	for _, c := range r.Fixed {
		out[c.Table] += len(c.Rules)
	}
	for ref, t := range r.Tail {
		out[ref.Table] += len(t)
	}
	for _, s := range r.Services {
		s.ruleCount(out, 1)
	}
	return out
}

// dispatchRules collects, per shared chain, the ServicePorts' rules in a stable
// order (names, from sortedServiceNames) followed by the chain's tail.
func (r *Ruleset) dispatchRules(names []state.ServicePortName) map[chainRef][]string {
	out := map[chainRef][]string{}
	for _, n := range names {
		for _, d := range r.Services[n].Dispatch {
			ref := chainRef{d.Table, d.Chain}
			out[ref] = append(out[ref], d.Spec)
		}
	}
	for ref, tail := range r.Tail {
		out[ref] = append(out[ref], tail...)
	}
	return out
}

// sortedServiceNames lists the Services of the ruleset in a stable order.
func (r *Ruleset) sortedServiceNames() []state.ServicePortName {
	names := make([]state.ServicePortName, 0, len(r.Services))
	for n := range r.Services {
		names = append(names, n)
	}
	state.SortNames(names)
	return names
}
