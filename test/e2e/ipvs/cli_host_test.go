//go:build linux

package ipvs

import (
	"os"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestDaemonOnHostWithoutIPVSExplains runs `kproxy --proxy-mode ipvs` on this
// project's hosts, whose kernel has no IPVS, inside a private namespace: it must
// exit with the missing-modules message, not a stack trace, and `--cleanup` must
// succeed there.
func TestDaemonOnHostWithoutIPVSExplains(t *testing.T) {
	if inVM() {
		t.Skip("host test")
	}
	netns.RequireRoot(t)
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IPVS loaded: the missing-modules path does not apply")
	}
	bin := kproxyBin(t)
	env := netns.New(t, "ipvs-cli")
	out, err := env.Node.Command(bin, "--proxy-mode", "ipvs", "--services-from", t.TempDir(),
		"--metrics-bind-address", "127.0.0.1:0", "--healthz-bind-address", "127.0.0.1:0").CombinedOutput()
	if err == nil {
		t.Fatalf("kproxy --proxy-mode ipvs succeeded on a kernel without IPVS:\n%s", out)
	}
	for _, want := range []string{"modprobe ip_vs\n", "modprobe ip_vs_rr\n", "IPVS"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"goroutine ", "panic:"} {
		if strings.Contains(string(out), bad) {
			t.Errorf("output has a stack trace:\n%s", out)
		}
	}
	if out, err := env.Node.Command(bin, "--cleanup", "--proxy-mode", "ipvs").CombinedOutput(); err != nil {
		t.Errorf("kproxy --cleanup --proxy-mode ipvs without IPVS: %v\n%s", err, out)
	}
}
