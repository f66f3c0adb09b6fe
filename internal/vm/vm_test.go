package vm

import (
	"context"
	"strings"
	"testing"
)

func TestParseConsole(t *testing.T) {
	out, code, ok := parseConsole("boot noise\nKPROXY-VM-BEGIN\nhello\nworld\n\nKPROXY-VM-END rc=3\n[ 1.0] reboot")
	if !ok || code != 3 || out != "hello\nworld\n\n" {
		t.Fatalf("got %q %d %v", out, code, ok)
	}
	if _, _, ok := parseConsole("KPROXY-VM-BEGIN\nno end"); ok {
		t.Fatal("missing end marker must not parse")
	}
}

// TestBootRunsScriptWithKernelFeatures boots the test kernel once and checks what
// the IPVS tests rely on: modules load, dummy links, carried iptables and ipset run.
func TestBootRunsScriptWithKernelFeatures(t *testing.T) {
	k := Require(t)
	res, err := Run(context.Background(), k, Options{
		Load: []string{"ip_vs", "dummy"},
		Script: `set -e
grep -q ip_vs /proc/modules
ip link add kube-ipvs0 type dummy
ip -o link show kube-ipvs0
/usr/sbin/iptables -t nat -N KPROXY-TEST
/usr/sbin/iptables -t nat -S KPROXY-TEST
/usr/sbin/ipset create kproxy-test hash:ip
/usr/sbin/ipset list -n
exit 7`,
		Console: testWriter{t},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Console)
	}
	if res.ExitCode != 7 {
		t.Fatalf("exit code %d, want 7\n%s", res.ExitCode, res.Output)
	}
	for _, want := range []string{"kube-ipvs0", "-N KPROXY-TEST", "kproxy-test"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("guest output lacks %q:\n%s", want, res.Output)
		}
	}
	t.Logf("boot took %v", res.Elapsed)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
