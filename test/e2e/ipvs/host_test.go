//go:build linux

package ipvs

import (
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/vm"
)

// TestIPVSInVM runs every TestGuest* test in one VM boot.
func TestIPVSInVM(t *testing.T) {
	if inVM() {
		t.Skip("already inside the VM")
	}
	k := vm.Require(t)
	files := map[string]string{
		"/usr/local/bin/e2e.test": vm.BuildTestBinary(t, "kproxy.dev/kproxy/test/e2e/ipvs"),
	}
	for guest, host := range extraBinaries(t) {
		files[guest] = host
	}
	res, err := vm.Run(context.Background(), k, vm.Options{
		Files:   files,
		Timeout: 15 * time.Minute,
		Console: console(),
		Script: `export KPROXY_IN_VM=1
cd /tmp
/usr/local/bin/e2e.test -test.v -test.run '` + guestRun() + `' -test.timeout 12m`,
	})
	if res != nil {
		t.Logf("guest output (%v):\n%s", res.Elapsed.Round(time.Second), res.Output)
	}
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, res.Console)
	}
	if res.ExitCode != 0 {
		failed := regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`).FindAllStringSubmatch(res.Output, -1)
		var names []string
		for _, f := range failed {
			names = append(names, f[1])
		}
		t.Fatalf("guest tests failed (exit %d): %s", res.ExitCode, strings.Join(names, ", "))
	}
	if !strings.Contains(res.Output, "--- PASS: TestGuest") {
		t.Fatal("no guest test ran")
	}
}

// guestRun selects the guest tests: all of them, or $KPROXY_VM_RUN while developing.
func guestRun() string {
	if r := os.Getenv("KPROXY_VM_RUN"); r != "" {
		return r
	}
	return "^TestGuest"
}

// console streams the guest console to stderr with KPROXY_VM_CONSOLE=1.
func console() io.Writer {
	if os.Getenv("KPROXY_VM_CONSOLE") != "" {
		return os.Stderr
	}
	return nil
}
