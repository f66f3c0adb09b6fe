package iptables

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// manyServices returns n ClusterIP Services with two endpoints each (on this
// node, so that each keeps its KUBE-SEP chains) in 10.<net>.0.0/16, numbered
// from first, plus every
// Service feature of the golden cases: enough for restores above
// zeroCountersAbove lines, with KUBE-EXT, KUBE-FW, KUBE-SVL and bucket chains.
func manyServices(first, n, net int) []*svc {
	out := allFeatures()
	for i := first; i < first+n; i++ {
		s := newSvc("many", fmt.Sprintf("s%04d", i), "http", tcp, fmt.Sprintf("10.97.%d.%d", i/250, i%250+1), 80)
		for e := 0; e < 2; e++ {
			s.ep(fmt.Sprintf("10.%d.%d.%d:8080", net, i/100, (i%100)*2+e+1), true, true)
		}
		out = append(out, s)
	}
	return out
}

// checkInterleaved checks the layout of every large table section (the ones
// starting with -Z) of a restore: each
// declared chain's rules follow its declaration with no other line between them,
// and every chain a rule jumps to that the restore declares was declared before.
func checkInterleaved(t *testing.T, input string) {
	t.Helper()
	var declared map[string]bool
	current, large := "", false
	lines := strings.Split(input, "\n")
	for n, l := range lines {
		if strings.HasPrefix(l, "*") {
			declared, current = map[string]bool{}, ""
			large = n+1 < len(lines) && lines[n+1] == "-Z"
		}
		if !large {
			continue
		}
		switch {
		case strings.HasPrefix(l, ":"):
			current = strings.Fields(l[1:])[0]
			declared[current] = true
		case strings.HasPrefix(l, "-A "):
			chain := strings.Fields(l)[1]
			if declared[chain] && chain != current {
				t.Fatalf("line %d: rule of %s away from its declaration (last declared %s): %s", n+1, chain, current, l)
			}
		}
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, "-I ") || strings.HasPrefix(l, "-R ") {
			if target := ruleJump(l); strings.HasPrefix(target, "KUBE-") && !declared[target] && strings.Contains(input, ":"+target+" ") {
				t.Fatalf("line %d jumps to %s before its declaration: %s", n+1, target, l)
			}
		}
	}
}

// sortedLines returns the input's lines, sorted.
func sortedLines(s string) []string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(ls)
	return ls
}

// TestLargeRestoreWritesEachChainWithItsRules renders a cold full sync above
// zeroCountersAbove lines: the restore starts with -Z, writes each chain's rules
// right after its declaration and the chains a rule jumps to before it, and
// holds exactly the lines of the same restore in the small layout.
func TestLargeRestoreWritesEachChainWithItsRules(t *testing.T) {
	b := fullDiff(Render(snapshot(manyServices(0, 300, 245)...), testRenderConfig()), kernelState{})
	if b.table(tableNAT).lines() <= zeroCountersAbove {
		t.Fatalf("nat section has %d lines, want more than %d", b.table(tableNAT).lines(), zeroCountersAbove)
	}
	large := string(b.Bytes())
	checkInterleaved(t, large)
	if !strings.Contains(large, "*nat\n-Z\n") {
		t.Fatalf("large nat section without -Z:\n%.300s", large)
	}
	// KUBE-SERVICES jumps to every Service chain: it is written after them.
	nat := large[strings.Index(large, "*nat\n"):]
	if i, j := strings.Index(nat, ":KUBE-SERVICES "), strings.LastIndex(nat, ":KUBE-SVC-"); i < j {
		t.Errorf("KUBE-SERVICES declared at byte %d, before the last Service chain (%d)", i, j)
	}
	want := sortedLines(string(b.render(false)))
	var got []string
	for _, l := range sortedLines(large) {
		if l != "-Z" {
			got = append(got, l)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the large layout does not hold the same lines: %d against %d", len(got), len(want))
	}
}

// TestLargeRestoresLeaveWhatAFreshSyncWrites runs large full syncs on the
// stateful fake (which rejects a jump to a chain that does not exist yet and a
// deletion of a missing rule): a cold sync, then a full sync after Services were
// removed, added and changed (stale chains deleted, dispatch rules deleted and
// inserted one by one).
// The tables must equal a fresh sync of the final Services, and a further full
// sync must write nothing.
func TestLargeRestoresLeaveWhatAFreshSyncWrites(t *testing.T) {
	ctx := context.Background()
	f := fakeipt.New()
	p := newTestProxier(f)
	if _, err := p.Sync(ctx, snapshot(manyServices(0, 300, 245)...), changes()); err != nil {
		t.Fatal(err)
	}
	checkInterleaved(t, f.LastInput())
	// 10 Services gone, 10 new (KUBE-SERVICES changes by -D and -I), every
	// endpoint moved (every Service chain rewritten).
	next := manyServices(10, 300, 246)
	next[len(next)-1].ep("10.246.0.1:8080", true, false)
	p.core.Invalidate()
	st, err := p.Sync(ctx, snapshot(next...), changes())
	if err != nil {
		t.Fatal(err)
	}
	in := f.LastInput()
	if !st.Full || !strings.Contains(in, "-X KUBE-SVC-") || !strings.Contains(in, "\n-D KUBE-SERVICES ") || !strings.Contains(in, "\n-Z\n") {
		t.Fatalf("second sync: %+v, want a large full sync deleting stale chains:\n%.500s", st, in)
	}
	checkInterleaved(t, in)
	fresh := fakeipt.New()
	if _, err := newTestProxier(fresh).Sync(ctx, snapshot(next...), changes()); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
		t.Fatal("after the large full sync the tables differ from a fresh sync")
	}
	before := len(f.Restores())
	p.core.Invalidate()
	if _, err := p.Sync(ctx, snapshot(next...), changes()); err != nil {
		t.Fatal(err)
	}
	if len(f.Restores()) != before {
		t.Fatalf("a third full sync wrote:\n%.500s", f.LastInput())
	}
}

func TestRuleJump(t *testing.T) {
	for spec, want := range map[string]string{
		`-m comment --comment "ns/a:http" -j KUBE-SVC-ABC`:                     "KUBE-SVC-ABC",
		`-j DNAT --to-destination 10.0.0.1:80`:                                 "DNAT",
		`-p tcp -m comment --comment "ns/a:http -> 10.0.0.1:80" -g KUBE-EXT-X`: "KUBE-EXT-X",
		`-m mark ! --mark 0x4000/0x4000`:                                       "",
		`-m comment --comment "x-j y"`:                                         "",
	} {
		if got := ruleJump(spec); got != want {
			t.Errorf("ruleJump(%q) = %q, want %q", spec, got, want)
		}
	}
}
