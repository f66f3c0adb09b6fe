//go:build linux

package ipvs

import (
	"context"
	"os"
	"strings"
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
	runMeasurement(t, k, vm.Options{
		Files:    map[string]string{"/usr/local/bin/kproxy": vm.BuildBinary(t, "kproxy.dev/kproxy/cmd/kproxy")},
		Script:   os.Getenv("KPROXY_BENCH_ENV") + " /usr/local/bin/kproxy bench sync --mode ipvs --services " + sizes + " --endpoints 3",
		Timeout:  90 * time.Minute,
		MemoryMB: 4096,
		Console:  os.Stderr,
	})
}

// TestBenchColdSyncAgainstOldInVM boots ONE VM with this tree's kproxy and an older
// static build (KPROXY_BENCH_VM_OLD, e.g. built from main) and runs `kproxy bench
// sync` for ipvs and iptables with each, interleaved, at the sizes of
// KPROXY_BENCH_VM (e.g. 1000,10000): before/after and ipvs/iptables ratios from the
// same guest. A measurement: it runs only when both variables are set.
func TestBenchColdSyncAgainstOldInVM(t *testing.T) {
	sizes, old := os.Getenv("KPROXY_BENCH_VM"), os.Getenv("KPROXY_BENCH_VM_OLD")
	if sizes == "" || old == "" || inVM() {
		t.Skip("measurement: set KPROXY_BENCH_VM=1000,10000 and KPROXY_BENCH_VM_OLD=/path/to/static/kproxy to run")
	}
	k := vm.Require(t)
	script := "for n in " + strings.ReplaceAll(sizes, ",", " ") + `; do
for m in ipvs iptables; do
for b in new old; do
echo "=== $b $m $n"
/usr/local/bin/kproxy-$b bench sync --mode $m --services $n --endpoints 3 --partial-runs 1 --json
done; done; done`
	runMeasurement(t, k, vm.Options{
		Files: map[string]string{
			"/usr/local/bin/kproxy-new": vm.BuildBinary(t, "kproxy.dev/kproxy/cmd/kproxy"),
			"/usr/local/bin/kproxy-old": old,
			// iptables' statistic extension needs libm (as in bench compare --vm).
			"/usr/lib/x86_64-linux-gnu/libm.so.6": "/usr/lib/x86_64-linux-gnu/libm.so.6",
		},
		Load:     []string{"ip_vs", "ip_vs_rr", "dummy", "veth", "nf_conntrack"},
		Script:   script,
		Timeout:  90 * time.Minute,
		MemoryMB: 2048,
		Console:  os.Stderr,
	})
}

// runMeasurement boots the VM with o and logs the guest's output: a measurement
// passes when its script exits 0.
func runMeasurement(t *testing.T, k vm.Kernel, o vm.Options) {
	t.Helper()
	res, err := vm.Run(context.Background(), k, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d after %v:\n%s", res.ExitCode, res.Elapsed.Round(time.Second), res.Output)
	if res.ExitCode != 0 {
		t.Fail()
	}
}
