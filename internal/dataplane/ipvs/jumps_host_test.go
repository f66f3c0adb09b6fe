//go:build linux

package ipvs

import (
	"context"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestBatchedJumpsRoundTripRealIptables loads the IPVS-mode sets, rules and the jump
// rules into the real iptables of a private namespace: the one iptables-restore
// of rules and jumps must be accepted, iptables-save must print every jump exactly
// as saveLine expects (else each full sync would fall back to -C/-I), and a
// second loadRules must add nothing.
func TestBatchedJumpsRoundTripRealIptables(t *testing.T) {
	env := netns.New(t, "ipvsjump")
	ctx := context.Background()
	ipt := execIptables{}
	save := func() string {
		var out string
		if err := env.Node.Do(func() error {
			var err error
			out, err = ipt.Save(ctx, false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := env.Node.Do(func() error {
		if err := (execIPSet{}).Restore(ctx, renderCreate(false, kubeProxySize)); err != nil {
			return err
		}
		return loadRules(ctx, ipt, false, renderRules(rulesOptions{MasqueradeBit: defaultMasqueradeBit}))
	}); err != nil {
		t.Fatal(err)
	}
	first := save()
	for _, j := range jumpRules {
		if strings.Count(first, j.saveLine()) != 1 {
			t.Errorf("iptables-save does not show %q once:\n%s", strings.TrimSpace(j.saveLine()), first)
		}
	}
	if err := env.Node.Do(func() error { return loadRules(ctx, ipt, false, "") }); err != nil {
		t.Fatal(err)
	}
	if again := save(); strings.Count(again, "\n-A ") != strings.Count(first, "\n-A ") {
		t.Errorf("a second loadRules changed the rules:\n%s\nbefore:\n%s", again, first)
	}
}
