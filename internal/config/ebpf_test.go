package config

import (
	"strings"
	"testing"
	"time"
)

// The ebpf mode is accepted and takes the nftables section's sync periods (its
// north-south part is the nftables mode), not the iptables ones.
func TestEBPFModeUsesNFTablesSettings(t *testing.T) {
	c, _, err := decodeBody("mode: ebpf\niptables:\n  syncPeriod: 10s\n  minSyncPeriod: 2s\n" +
		"nftables:\n  syncPeriod: 45s\n  minSyncPeriod: 3s\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c); err != nil {
		t.Fatalf("mode ebpf rejected: %v", err)
	}
	if Mode(c) != ModeEBPF {
		t.Fatalf("Mode = %q", Mode(c))
	}
	sync, min := SyncPeriods(c)
	if sync != 45*time.Second || min != 3*time.Second {
		t.Errorf("SyncPeriods(ebpf) = %v, %v, want the nftables section's 45s, 3s", sync, min)
	}
	c.NFTables.MinSyncPeriod.Duration = time.Minute
	if err := Validate(c); err == nil || !strings.Contains(err.Error(), "nftables.minSyncPeriod") {
		t.Errorf("ebpf mode with a bad nftables section: %v, want nftables.minSyncPeriod named", err)
	}
}

// An unknown mode's error lists every valid mode, ebpf included.
func TestUnknownModeListsEBPF(t *testing.T) {
	c, _, err := decodeBody("mode: bpf\n")
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(c)
	want := "unknown proxy mode \"bpf\" (valid: iptables, ipvs, nftables, userspace, ebpf)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", err, want)
	}
}

func TestSettingsMode(t *testing.T) {
	for mode, want := range map[string]string{ModeEBPF: ModeNFTables, ModeNFTables: ModeNFTables,
		ModeIPTables: ModeIPTables, ModeIPVS: ModeIPVS, ModeUserspace: ModeUserspace} {
		if got := SettingsMode(mode); got != want {
			t.Errorf("SettingsMode(%s) = %s, want %s", mode, got, want)
		}
	}
}

// masqueradeAll cannot reach socket-LB'd connections: the ebpf mode says so at
// start rather than pretend; other modes honour it silently.
func TestEBPFModeWarnsThatMasqueradeAllSkipsSocketLB(t *testing.T) {
	for _, body := range []string{"mode: ebpf\nnftables:\n  masqueradeAll: true\n", "mode: ebpf\niptables:\n  masqueradeAll: true\n"} {
		c, _, err := decodeBody(body)
		if err != nil {
			t.Fatal(err)
		}
		if msg := warningsByField(Ignored(c))["nftables.masqueradeAll"]; !strings.Contains(msg, "socket LB") {
			t.Errorf("%q: warning %q, want one saying socket LB is not masqueraded", body, msg)
		}
	}
	for _, body := range []string{"mode: ebpf\n", "mode: nftables\nnftables:\n  masqueradeAll: true\n"} {
		c, _, err := decodeBody(body)
		if err != nil {
			t.Fatal(err)
		}
		if msg, ok := warningsByField(Ignored(c))["nftables.masqueradeAll"]; ok {
			t.Errorf("%q: unexpected warning %q", body, msg)
		}
	}
}
