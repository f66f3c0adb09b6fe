package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
)

// Starting a mode clears the modes kube-proxy clears: nftables the iptables-based
// ones, those the nftables tables; iptables and ipvs leave each other alone.
func TestOtherModesAtStartFollowKubeProxy(t *testing.T) {
	for mode, want := range map[string]struct{ clears, keeps []string }{
		"nftables":  {clears: []string{"iptables", "ipvs", "ebpf"}, keeps: []string{"nftables"}},
		"iptables":  {clears: []string{"nftables", "ebpf"}, keeps: []string{"iptables", "ipvs"}},
		"ipvs":      {clears: []string{"nftables", "ebpf"}, keeps: []string{"iptables", "ipvs"}},
		"userspace": {keeps: []string{"iptables", "ipvs", "nftables", "userspace", "ebpf"}},
		// The ebpf mode's north-south part is the nftables mode's `kproxy` table.
		"ebpf": {clears: []string{"iptables", "ipvs"}, keeps: []string{"nftables", "ebpf"}},
	} {
		got := OtherModesAtStart(mode)
		for _, m := range want.clears {
			if !slices.Contains(got, m) {
				t.Errorf("starting %s: %v, want it to clear %s", mode, got, m)
			}
		}
		for _, m := range want.keeps {
			if slices.Contains(got, m) {
				t.Errorf("starting %s: %v, want it to keep %s", mode, got, m)
			}
		}
	}
}

var startCleaned []string

func init() {
	record := func(name string, err error) func(context.Context, dataplane.Options) error {
		return func(context.Context, dataplane.Options) error {
			startCleaned = append(startCleaned, name)
			return err
		}
	}
	dataplane.Register(dataplane.Mode{Name: "start-other-ok", Cleanup: record("start-other-ok", nil)})
	dataplane.Register(dataplane.Mode{Name: "start-other-stuck", Cleanup: record("start-other-stuck", errors.New("chain busy"))})
	dataplane.Register(dataplane.Mode{Name: "start-self", Cleanup: record("start-self", nil),
		CleanupKubeProxy: record("start-self-kube-proxy", nil)})
	dataplane.Register(dataplane.Mode{Name: "start-borrower"})
}

// CleanupOtherModes runs the starting mode's CleanupKubeProxy and each listed mode's
// Cleanup (never the starting mode's own Cleanup, which would drop its live rules),
// skips modes not linked in, goes on past a failure and reports it once, naming it.
func TestCleanupOtherModesRunsEachOthersCleanup(t *testing.T) {
	othersAtStart["start-self"] = []string{"start-other-stuck", "not-linked", "start-other-ok"}
	defer delete(othersAtStart, "start-self")
	startCleaned = nil
	var logs bytes.Buffer
	err := CleanupOtherModes(t.Context(), "start-self", dataplane.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if want := []string{"start-self-kube-proxy", "start-other-stuck", "start-other-ok"}; !slices.Equal(startCleaned, want) {
		t.Errorf("cleaned %v, want %v", startCleaned, want)
	}
	if err == nil || !strings.Contains(err.Error(), "start-other-stuck") || !strings.Contains(err.Error(), "chain busy") {
		t.Errorf("err = %v, want one naming start-other-stuck and its cause", err)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "other=start-other-stuck") {
		t.Errorf("want one error line naming start-other-stuck, got %d:\n%s", n, logs.String())
	}
}

// A mode that writes another mode's rules (ebpf: the nftables mode's table for
// north-south traffic) runs that mode's CleanupKubeProxy at start, so kube-proxy's
// nftables tables do not shadow it; it never runs that mode's Cleanup (its own live
// rules).
func TestCleanupOtherModesRunsTheRulesModesKubeProxyCleanup(t *testing.T) {
	if got := rulesModeOf("ebpf"); got != "nftables" {
		t.Errorf("rulesModeOf(ebpf) = %q, want nftables: kube-proxy's nftables tables would stay at an ebpf start", got)
	}
	for _, m := range []string{"nftables", "iptables", "ipvs", "userspace"} {
		if got := rulesModeOf(m); got != m {
			t.Errorf("rulesModeOf(%s) = %q, want itself", m, got)
		}
	}
	defer func(f func(string) string) { rulesModeOf = f }(rulesModeOf)
	rulesModeOf = func(m string) string {
		if m == "start-borrower" {
			return "start-self"
		}
		return m
	}
	othersAtStart["start-borrower"] = []string{"start-other-ok"}
	defer delete(othersAtStart, "start-borrower")
	startCleaned = nil
	if err := CleanupOtherModes(t.Context(), "start-borrower", dataplane.Options{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start-self-kube-proxy", "start-other-ok"}; !slices.Equal(startCleaned, want) {
		t.Errorf("cleaned %v, want %v", startCleaned, want)
	}
}
