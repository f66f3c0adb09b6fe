//go:build linux

package ipvs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestNewOnKernelWithoutIPVS runs the real preflight in a private namespace. On a
// kernel without IPVS (this project's hosts) it must name the missing modules and
// the modprobe lines; on one with IPVS it must build the dataplane.
func TestNewOnKernelWithoutIPVS(t *testing.T) {
	env := netns.New(t, "ipvs-pre")
	var dp dataplane.Programmer
	var err error
	if derr := env.Node.Do(func() error {
		dp, err = New(dataplane.Options{})
		if dp != nil {
			_ = dp.Cleanup(context.Background())
		}
		return nil
	}); derr != nil {
		t.Fatal(derr)
	}
	if ipvsAvailable() {
		if err != nil {
			t.Fatalf("kernel has IPVS, yet New failed: %v", err)
		}
		return
	}
	var pe *preflightError
	if !errors.As(err, &pe) {
		t.Fatalf("want the missing-modules error, got %v", err)
	}
	for _, want := range []string{"modprobe ip_vs\n", "modprobe ip_vs_rr\n", "IPVS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Cleanup without a daemon is a no-op success on such a kernel.
	if derr := env.Node.Do(func() error { return CleanupMode(context.Background(), dataplane.Options{}) }); derr != nil {
		t.Fatalf("cleanup on a kernel without IPVS: %v", derr)
	}
}
