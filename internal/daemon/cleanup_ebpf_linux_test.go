//go:build linux

package daemon

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/dataplane/ebpf"
)

// Starting nftables, iptables or ipvs runs the ebpf mode's registered Cleanup,
// which removes its pin directory, and is a no-op when there is none.
func TestStartingKernelModeRemovesEBPFPins(t *testing.T) {
	m, err := dataplane.Lookup("ebpf")
	if err != nil || m.Cleanup == nil {
		t.Fatalf("ebpf mode not registered with a Cleanup: %v", err)
	}
	for _, mode := range []string{"nftables", "iptables", "ipvs"} {
		if !slices.Contains(OtherModesAtStart(mode), "ebpf") {
			t.Fatalf("starting %s does not clear the ebpf mode: %v", mode, OtherModesAtStart(mode))
		}
	}
	dir := filepath.Join(t.TempDir(), "pins")
	t.Setenv(ebpf.EnvPinDir, dir)
	if err := m.Cleanup(t.Context(), dataplane.Options{}); err != nil {
		t.Fatalf("cleanup without a pin directory: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "map_services"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(t.Context(), dataplane.Options{}); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("pin directory %s left after cleanup: %v", dir, err)
	}
}
