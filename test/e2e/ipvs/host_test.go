//go:build linux

package ipvs

import (
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
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
	timeout := vmTimeout(t)
	res, err := vm.Run(context.Background(), k, vm.Options{
		Files:   files,
		Timeout: timeout,
		Console: console(),
		Script: `export KPROXY_IN_VM=1` + guestEnv() + `
cd /tmp
/usr/local/bin/e2e.test -test.v -test.run '` + guestRun() + `' -test.timeout ` + (timeout - 3*time.Minute).String(),
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

// vmTimeout bounds the boot: 15 minutes, or $KPROXY_VM_TIMEOUT (a duration, at
// least 5m) for longer measurements.
func vmTimeout(t *testing.T) time.Duration {
	s := os.Getenv("KPROXY_VM_TIMEOUT")
	if s == "" {
		return 15 * time.Minute
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 5*time.Minute {
		t.Fatalf("KPROXY_VM_TIMEOUT=%q: want a duration of at least 5m", s)
	}
	return d
}

// guestEnv passes the host's $KPROXY_RELAY_CONNS on to the guest tests.
func guestEnv() string {
	if n, err := strconv.Atoi(os.Getenv("KPROXY_RELAY_CONNS")); err == nil && n > 0 {
		return " KPROXY_RELAY_CONNS=" + strconv.Itoa(n)
	}
	return ""
}

// console streams the guest console to stderr with KPROXY_VM_CONSOLE=1.
func console() io.Writer {
	if os.Getenv("KPROXY_VM_CONSOLE") != "" {
		return os.Stderr
	}
	return nil
}
