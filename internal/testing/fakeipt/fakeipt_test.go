package fakeipt

import (
	"context"
	"errors"
	"strings"
	"testing"
)

var ctx = context.Background()

func mustRestore(t *testing.T, r *Runner, in string) {
	t.Helper()
	if err := r.Restore(ctx, []byte(in), true); err != nil {
		t.Fatalf("restore: %v\n%s", err, in)
	}
}

func save(t *testing.T, r *Runner, table string) string {
	t.Helper()
	out, err := r.Save(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

const natInput = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A1 - [0:0]
-A KUBE-SEP-A1 -p tcp -m comment --comment ns/a:http -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SVC-A -m comment --comment "ns/a:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A1
-A KUBE-SERVICES -d 10.96.0.1 -p tcp --dport 80 -j KUBE-SVC-A
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
`

func TestRestoreThenSaveRoundTrips(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	want := `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SEP-A1 - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SEP-A1 -p tcp -m comment --comment "ns/a:http" -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -m comment --comment "ns/a:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-A1
COMMIT
`
	got := save(t, r, "nat")
	if got != want {
		t.Fatalf("save:\n%s\nwant:\n%s", got, want)
	}
	if all := save(t, r, ""); all != want {
		t.Fatalf("save of every table shows only loaded tables, got:\n%s", all)
	}
	// Loading the saved text into a fresh fake without --noflush gives the same.
	r2 := New()
	if err := r2.Restore(ctx, []byte(got), false); err != nil {
		t.Fatal(err)
	}
	if again := save(t, r2, "nat"); again != want {
		t.Fatalf("save after restoring a save differs:\n%s", again)
	}
	rules, ok, err := r.ListChain(ctx, "nat", "KUBE-SERVICES")
	if err != nil || !ok || len(rules) != 1 || rules[0] != "-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp --dport 80 -j KUBE-SVC-A" {
		t.Fatalf("ListChain = %q %v %v", rules, ok, err)
	}
	if _, ok, _ := r.ListChain(ctx, "nat", "KUBE-NOPE"); ok {
		t.Fatal("ListChain of a missing chain says it exists")
	}
}

func TestNoflushDeclarationFlushesUserChainsOnly(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	mustRestore(t, r, "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-A1\nCOMMIT\n")
	if got := r.Rules("nat", "KUBE-SVC-A"); len(got) != 1 || got[0] != "-j KUBE-SEP-A1" {
		t.Fatalf("declared chain not flushed and refilled: %q", got)
	}
	if got := r.Rules("nat", "PREROUTING"); len(got) != 1 {
		t.Fatalf("declaring a built-in chain must not flush it: %q", got)
	}
	if got := r.Rules("nat", "KUBE-SERVICES"); len(got) != 1 {
		t.Fatalf("undeclared chain changed: %q", got)
	}
}

func TestRestoreWithoutNoflushReplacesTheTable(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	mustRestore(t, r, "*filter\n:KUBE-FW - [0:0]\nCOMMIT\n")
	if err := r.Restore(ctx, []byte("*nat\n:KUBE-NEW - [0:0]\nCOMMIT\n"), false); err != nil {
		t.Fatal(err)
	}
	if got := r.Chains("nat"); strings.Join(got, ",") != "INPUT,KUBE-NEW,OUTPUT,POSTROUTING,PREROUTING" {
		t.Fatalf("nat chains %v", got)
	}
	if r.Rules("nat", "PREROUTING") == nil || len(r.Rules("nat", "PREROUTING")) != 0 {
		t.Fatal("built-in chains must be flushed")
	}
	if r.Rules("filter", "KUBE-FW") == nil {
		t.Fatal("a table the input does not name must stay")
	}
}

func TestFailingLineDiscardsItsSection(t *testing.T) {
	cases := map[string]string{
		"unknown jump target":       "-A KUBE-SERVICES -j KUBE-SVC-MISSING",
		"delete a missing rule":     "-D KUBE-SERVICES -d 10.96.0.9/32 -j KUBE-SVC-A",
		"delete a non-empty chain":  "-X KUBE-SEP-A1",
		"delete a referenced chain": "-F KUBE-SVC-A\n-X KUBE-SEP-A1",
		"rule in a missing chain":   "-A KUBE-NOPE -j ACCEPT",
		"chain name too long":       ":KUBE-SVC-ABCDEFGHIJKLMNOPQRSTU - [0:0]",
		"insert past the end":       "-I KUBE-SERVICES 4 -j ACCEPT",
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			r := New()
			mustRestore(t, r, natInput)
			before := r.Dump()
			in := "*filter\n:KUBE-FW - [0:0]\nCOMMIT\n*nat\n:KUBE-NEW - [0:0]\n-A KUBE-SERVICES -j KUBE-NEW\n" + bad + "\nCOMMIT\n"
			err := r.Restore(ctx, []byte(in), true)
			if err == nil || !strings.Contains(err.Error(), "line ") {
				t.Fatalf("want an error naming the line, got %v", err)
			}
			if r.Rules("filter", "KUBE-FW") == nil {
				t.Fatal("the section committed before the failure must stay, as with the real tool")
			}
			if after := save(t, r, "nat"); !strings.Contains(before, after) || strings.Contains(after, "KUBE-NEW") {
				t.Fatalf("nat changed by a failed section:\n%s", after)
			}
		})
	}
}

func TestMissingCommitAppliesNothing(t *testing.T) {
	r := New()
	if err := r.Restore(ctx, []byte("*nat\n:KUBE-X - [0:0]\n"), true); err == nil {
		t.Fatal("want COMMIT expected")
	}
	if r.Rules("nat", "KUBE-X") != nil {
		t.Fatal("an uncommitted section was applied")
	}
}

func TestDeleteByRuleAndRemoveChain(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	// The spec is matched in canonical form: -d without prefix, unquoted comment.
	mustRestore(t, r, "*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A1 - [0:0]\n-D KUBE-SERVICES -d 10.96.0.1 -p tcp --dport 80 -j KUBE-SVC-A\n-X KUBE-SVC-A\n-X KUBE-SEP-A1\nCOMMIT\n")
	if got := r.Chains("nat"); strings.Join(got, ",") != "INPUT,KUBE-SERVICES,OUTPUT,POSTROUTING,PREROUTING" {
		t.Fatalf("chains %v", got)
	}
	if got := r.Rules("nat", "KUBE-SERVICES"); len(got) != 0 {
		t.Fatalf("rule not deleted: %q", got)
	}
	mustRestore(t, r, "*nat\n-I KUBE-SERVICES -j RETURN\n-I KUBE-SERVICES 1 -j ACCEPT\n-A KUBE-SERVICES -j DROP\n-I KUBE-SERVICES 3 -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n")
	got := strings.Join(r.Rules("nat", "KUBE-SERVICES"), ";")
	if got != "-j ACCEPT;-j RETURN;-j MARK --set-xmark 0x4000/0x4000;-j DROP" {
		t.Fatalf("insert order: %s", got)
	}
}

func TestRecordsRestoresAndInjectedFailure(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	boom := errors.New("boom")
	r.FailNext(boom)
	if err := r.Restore(ctx, []byte("*nat\n-F\nCOMMIT\n"), true); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if len(r.Rules("nat", "KUBE-SERVICES")) != 1 {
		t.Fatal("an injected failure applied the input")
	}
	rs := r.Restores()
	if len(rs) != 2 || rs[0].Input != natInput || !rs[0].NoFlush || !errors.Is(rs[1].Err, boom) || r.LastInput() != "*nat\n-F\nCOMMIT\n" {
		t.Fatalf("restores %+v", rs)
	}
}

func TestExecChecksInsertsAndDeletes(t *testing.T) {
	r := New()
	mustRestore(t, r, natInput)
	jump := []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}
	if err := r.Exec("nat", append([]string{"-C", "OUTPUT"}, jump...)...); !errors.Is(err, ErrNoRule) {
		t.Fatalf("-C of an absent rule: %v", err)
	}
	if err := r.Exec("nat", append([]string{"-I", "OUTPUT"}, jump...)...); err != nil {
		t.Fatal(err)
	}
	if err := r.Exec("nat", append([]string{"-C", "OUTPUT"}, jump...)...); err != nil {
		t.Fatalf("-C after -I: %v", err)
	}
	if err := r.Exec("nat", "-I", "OUTPUT", "-j", "KUBE-MISSING"); err == nil {
		t.Fatal("a jump to a missing chain must fail")
	}
	if err := r.Exec("nat", append([]string{"-D", "OUTPUT"}, jump...)...); err != nil || len(r.Rules("nat", "OUTPUT")) != 0 {
		t.Fatalf("-D: %v %q", err, r.Rules("nat", "OUTPUT"))
	}
	if err := r.Exec("nat", append([]string{"-D", "OUTPUT"}, jump...)...); err == nil {
		t.Fatal("deleting an absent rule must fail")
	}
}

func TestReplaceByNumber(t *testing.T) {
	r := New()
	mustRestore(t, r, "*nat\n:KUBE-X - [0:0]\n-A KUBE-X -j RETURN\n-A KUBE-X -j ACCEPT\n-A KUBE-X -j DROP\nCOMMIT\n")
	mustRestore(t, r, "*nat\n-R KUBE-X 2 -j MARK --set-xmark 0x4000/0x4000\nCOMMIT\n")
	if got := strings.Join(r.Rules("nat", "KUBE-X"), ";"); got != "-j RETURN;-j MARK --set-xmark 0x4000/0x4000;-j DROP" {
		t.Fatalf("after -R 2: %s", got)
	}
	for _, bad := range []string{"-R KUBE-X 4 -j DROP", "-R KUBE-X 0 -j DROP", "-R KUBE-X -j DROP", "-R KUBE-X 1 -j KUBE-MISSING"} {
		if err := r.Restore(ctx, []byte("*nat\n"+bad+"\nCOMMIT\n"), true); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if got := strings.Join(r.Rules("nat", "KUBE-X"), ";"); got != "-j RETURN;-j MARK --set-xmark 0x4000/0x4000;-j DROP" {
		t.Fatalf("failed replaces changed the chain: %s", got)
	}
}
