package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveToolsFollowsPATH(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "iptables-nft-restore")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	got := resolveTools("iptables")
	if len(got) != 1 || got["iptables-nft-restore"] != fake {
		t.Errorf("resolveTools(iptables) with only %s in PATH = %v, want just it", fake, got)
	}
	if got := resolveTools("nftables"); got != nil {
		t.Errorf("resolveTools(nftables) = %v, want nil (the mode runs no tool)", got)
	}
	t.Setenv("PATH", t.TempDir())
	if got := resolveTools("ipvs"); got != nil {
		t.Errorf("resolveTools(ipvs) with an empty PATH = %v, want nil", got)
	}
}
