//go:build linux

package ipvs

import (
	"context"
	"os"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/vm"
)

// TestBenchSyncInVM runs `kproxy bench sync --mode ipvs` in the VM. It is a
// measurement, not a test: it runs only with KPROXY_BENCH_VM set to the arguments'
// sizes (e.g. KPROXY_BENCH_VM=1000,10000) and prints the table for
// docs/performance.md. KPROXY_BENCH_ENV may prefix the command with variables
// (e.g. GODEBUG=gctrace=1).
func TestBenchSyncInVM(t *testing.T) {
	sizes := os.Getenv("KPROXY_BENCH_VM")
	if sizes == "" || inVM() {
		t.Skip("measurement: set KPROXY_BENCH_VM=1000,10000 to run")
	}
	k := vm.Require(t)
	res, err := vm.Run(context.Background(), k, vm.Options{
		Files:    map[string]string{"/usr/local/bin/kproxy": vm.BuildBinary(t, "kproxy.dev/kproxy/cmd/kproxy")},
		Script:   os.Getenv("KPROXY_BENCH_ENV") + " /usr/local/bin/kproxy bench sync --mode ipvs --services " + sizes + " --endpoints 3",
		Timeout:  90 * time.Minute,
		MemoryMB: 4096,
		Console:  os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d after %v:\n%s", res.ExitCode, res.Elapsed.Round(time.Second), res.Output)
	if res.ExitCode != 0 {
		t.Fail()
	}
}
