//go:build linux

package fakenft

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

var tbl = &nftables.Table{Name: "kproxy", Family: nftables.TableFamilyIPv4}

func vmap(name string) *nftables.Set {
	return &nftables.Set{Table: tbl, Name: name, KeyType: nftables.TypeIPAddr, IsMap: true, DataType: nftables.TypeVerdict}
}

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}

func lookup(set string) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, IsDestRegSet: true, SetName: set}}
}

// load builds a table: a base chain looking up a verdict map whose element jumps to
// a service chain.
func load(t *testing.T, k *Kernel) {
	t.Helper()
	c := k.Conn()
	c.AddTable(tbl)
	hook, prio, pol := nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Table: tbl, Name: "prerouting", Hooknum: hook, Priority: prio, Type: nftables.ChainTypeNAT, Policy: &pol})
	c.AddChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
	if err := c.AddSet(vmap("services"), nil); err != nil {
		t.Fatal(err)
	}
	c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "prerouting"}, Exprs: lookup("services")})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "svc-a"}, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	c.SetAddElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 1}, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: "svc-a"}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestFlushAppliesAndDumps(t *testing.T) {
	k := New()
	load(t, k)
	got := k.Dump(nftables.TableFamilyIPv4, "kproxy")
	for _, want := range []string{
		"table ip kproxy\n",
		"\tchain prerouting { type nat hook 0 priority -100 policy 1 }\n\t\tPayload{",
		"Lookup{SourceRegister:1 DestRegister:0 IsDestRegSet:true SetID:0 SetName:services Invert:false}\n",
		"\tchain svc-a\n\t\taccept\n",
		"\tset services { key ipv4_addr, map verdict }\n\t\t0a600001 : jump svc-a\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dump lacks %q:\n%s", want, got)
		}
	}
	tb, err := k.Conn().ListTableOfFamily("kproxy", nftables.TableFamilyIPv4)
	if err != nil || tb.Use != 3 {
		t.Fatalf("table %+v %v, want use 3 (two chains, one set)", tb, err)
	}
	rules, err := k.Conn().GetRules(tbl, &nftables.Chain{Name: "svc-a"})
	if err != nil || len(rules) != 1 {
		t.Fatalf("rules %v %v", rules, err)
	}
	if _, err := k.Conn().ListTableOfFamily("kproxy", nftables.TableFamilyIPv6); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing table: %v", err)
	}
	if b := k.LastBatch(); len(b.Ops) != 7 || b.Ops[6] != "add element ip kproxy services 0a600001 : jump svc-a" {
		t.Fatalf("batch ops %q", b.Ops)
	}
}

func TestRefusedTransactionChangesNothing(t *testing.T) {
	cases := map[string]func(c *Conn){
		"rule in a missing chain": func(c *Conn) {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "nope"}, Exprs: jump("svc-a")})
		},
		"jump to a missing chain": func(c *Conn) {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "svc-a"}, Exprs: jump("svc-b")})
		},
		"lookup of a missing set": func(c *Conn) {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: "svc-a"}, Exprs: lookup("nope")})
		},
		"delete a missing element": func(c *Conn) {
			c.SetDeleteElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 9}}})
		},
		"element clashes": func(c *Conn) {
			c.SetAddElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 1}, VerdictData: &expr.Verdict{Kind: expr.VerdictDrop}}})
		},
		"delete a chain with rules": func(c *Conn) { c.DelChain(&nftables.Chain{Table: tbl, Name: "svc-a"}) },
		"delete a chain a map jumps to": func(c *Conn) {
			c.FlushChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
			c.DelChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
		},
		"delete a set a rule uses": func(c *Conn) { c.DelSet(vmap("services")) },
		"delete a missing table": func(c *Conn) {
			c.DelTable(&nftables.Table{Name: "kproxy", Family: nftables.TableFamilyIPv6})
		},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			k := New()
			load(t, k)
			before := k.Dump(nftables.TableFamilyIPv4, "kproxy")
			c := k.Conn()
			c.AddChain(&nftables.Chain{Table: tbl, Name: "svc-new"})
			c.SetAddElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 2}, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: "svc-new"}}})
			bad(c)
			err := c.Flush()
			var oe *OpError
			if !errors.As(err, &oe) {
				t.Fatalf("want a refused transaction, got %v", err)
			}
			if after := k.Dump(nftables.TableFamilyIPv4, "kproxy"); after != before {
				t.Fatalf("a refused transaction changed the table:\n%s", after)
			}
			if c.Flush() != nil {
				t.Fatal("the queue must be empty after a Flush")
			}
		})
	}
}

func TestDeletesAndIdempotentAdds(t *testing.T) {
	k := New()
	load(t, k)
	c := k.Conn()
	// Re-adding what exists is accepted, as the kernel does without NLM_F_EXCL.
	c.AddTable(tbl)
	c.AddChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
	c.SetAddElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 1}, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: "svc-a"}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.SetDeleteElements(vmap("services"), []nftables.SetElement{{Key: []byte{10, 96, 0, 1}}})
	c.FlushChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
	c.DelChain(&nftables.Chain{Table: tbl, Name: "svc-a"})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := k.Chains(nftables.TableFamilyIPv4, "kproxy"); len(got) != 1 || got[0] != "prerouting" {
		t.Fatalf("chains %v", got)
	}
	if got := k.Elements(nftables.TableFamilyIPv4, "kproxy", "services"); len(got) != 0 {
		t.Fatalf("elements %v", got)
	}
	c.DelTable(tbl)
	if err := c.Flush(); err != nil || k.Dump(nftables.TableFamilyIPv4, "kproxy") != "" {
		t.Fatalf("delete table: %v", err)
	}
}

func TestInjectedFailure(t *testing.T) {
	k := New()
	boom := errors.New("boom")
	k.FailNextFlush(boom)
	c := k.Conn()
	c.AddTable(tbl)
	if err := c.Flush(); !errors.Is(err, boom) || k.Dump(nftables.TableFamilyIPv4, "kproxy") != "" {
		t.Fatalf("err %v", err)
	}
	c.AddTable(tbl)
	if err := c.Flush(); err != nil || k.Dump(nftables.TableFamilyIPv4, "kproxy") == "" {
		t.Fatalf("the failure must apply to one Flush only: %v", err)
	}
}

func TestRuleTextPrintsNestedExpressions(t *testing.T) {
	got := RuleText([]expr.Any{&expr.Dynset{SetName: "aff", Exprs: []expr.Any{&expr.Counter{}}}})
	if strings.Contains(got, "0xc") || !strings.Contains(got, "SetName:aff") || !strings.Contains(got, "[Counter{") {
		t.Fatalf("RuleText = %s", got)
	}
}
