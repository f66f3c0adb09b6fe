// Package fakeipt is a stateful, in-memory stand-in for the iptables tools, for
// tests: it applies iptables-restore input to its tables the way the real tool does
// (with or without --noflush) and answers iptables-save and `iptables -S CHAIN` in
// the tool's format. It records every restore input, so a test can check both what a
// sync sent and what the "kernel" holds afterwards. New accepts addresses of either
// family; NewIPv4 and NewIPv6 refuse the other family's addresses and icmp reject
// types with the real tools' messages ("invalid mask `128' specified").
//
// It implements the Runner interface of internal/dataplane/iptables (Restore, Save,
// ListChain) and, through Family, the per-family iptables interface of
// internal/dataplane/ipvs. It imports nothing from kproxy's mode packages, so any test
// package may use it; nothing under internal/testing is linked into the binary.
package fakeipt

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// builtinChains lists each table's built-in chains, in iptables-save's order.
var builtinChains = map[string][]string{
	"raw":      {"PREROUTING", "OUTPUT"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// tableOrder is the order in which Save("") prints the tables that exist.
var tableOrder = []string{"raw", "mangle", "filter", "nat", "security"}

// Restore is one recorded iptables-restore call.
type Restore struct {
	Input   string
	NoFlush bool
	// Err is what the call returned.
	Err error
}

// Runner is the fake. The zero value is not usable: call New.
type Runner struct {
	mu       sync.Mutex
	tables   map[string]*table
	restores []Restore
	// failNext, when set, makes the next Restore fail without applying anything.
	failNext error
	lists    int
	// family, when set (NewIPv4, NewIPv6), makes restores of the other family fail.
	family family
}

// New returns a Runner with no tables loaded: a table appears, with its built-in
// chains, the first time a restore names it (as a kernel module loads on first use).
func New() *Runner {
	return &Runner{tables: map[string]*table{}}
}

// Restore applies input as iptables-restore does. Each table section takes effect
// at its COMMIT; a failing line aborts the call and discards its section, while
// sections committed before it stay (the real tool commits table by table). Without
// noflush, each section starts by flushing the table and deleting its user chains.
func (r *Runner) Restore(_ context.Context, input []byte, noflush bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.failNext
	r.failNext = nil
	if err == nil {
		err = r.apply(string(input), noflush)
	}
	r.restores = append(r.restores, Restore{Input: string(input), NoFlush: noflush, Err: err})
	return err
}

// Save prints one table (or every loaded table when name is "") as iptables-save
// does: built-in chains first with their policy, then user chains by name, then the
// rules chain by chain. Comment lines are left out.
func (r *Runner) Save(_ context.Context, name string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name != "" {
		if _, ok := builtinChains[name]; !ok {
			return nil, fmt.Errorf("iptables-save: table %q does not exist", name)
		}
		return []byte(r.tableOrEmpty(name).save(name)), nil
	}
	var b strings.Builder
	for _, n := range tableOrder {
		if t := r.tables[n]; t != nil {
			b.WriteString(t.save(n))
		}
	}
	return []byte(b.String()), nil
}

// ListChain returns the chain's rules as `iptables -S CHAIN` prints them ("-A ..."
// lines only) and whether the chain exists.
func (r *Runner) ListChain(_ context.Context, tbl, chain string) ([]string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists++
	if _, ok := builtinChains[tbl]; !ok {
		return nil, false, fmt.Errorf("iptables: table %q does not exist", tbl)
	}
	c := r.tableOrEmpty(tbl).chains[chain]
	if c == nil {
		return nil, false, nil
	}
	out := make([]string, 0, len(c.rules))
	for _, rule := range c.rules {
		out = append(out, "-A "+chain+" "+rule.spec)
	}
	return out, true, nil
}

// tableOrEmpty returns the table, or a fresh one with only built-in chains when it
// was never loaded (without loading it).
func (r *Runner) tableOrEmpty(name string) *table {
	if t := r.tables[name]; t != nil {
		return t
	}
	return newTable(name)
}

// Restores returns every restore call so far, oldest first.
func (r *Runner) Restores() []Restore {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Restore(nil), r.restores...)
}

// LastInput is the input of the latest restore call, "" if none.
func (r *Runner) LastInput() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.restores) == 0 {
		return ""
	}
	return r.restores[len(r.restores)-1].Input
}

// FailNext makes the next Restore return err and change nothing.
func (r *Runner) FailNext(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = err
}

// ListCalls counts ListChain calls.
func (r *Runner) ListCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lists
}

// Rules returns the rule specs of one chain (without "-A CHAIN"), nil when the
// chain does not exist.
func (r *Runner) Rules(tbl, chain string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tables[tbl]
	if t == nil || t.chains[chain] == nil {
		return nil
	}
	out := []string{}
	for _, rule := range t.chains[chain].rules {
		out = append(out, rule.spec)
	}
	return out
}

// Chains returns the names of every chain of a table, sorted.
func (r *Runner) Chains(tbl string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tables[tbl]
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.chains))
	for n := range t.chains {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Dump is Save("") as a string, for comparing two fakes' contents.
func (r *Runner) Dump() string {
	out, _ := r.Save(context.Background(), "")
	return string(out)
}
