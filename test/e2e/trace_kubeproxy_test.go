//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
	"kproxy.dev/kproxy/internal/trace"
)

// TestTraceReadsKubeProxyNftablesOverNetlink loads the hand-written kube-proxy
// nftables layout (internal/trace/testdata) into a real kernel with nft, and
// traces it read back over netlink and through nft list ruleset: both readings
// must give the answers the layout means, including anonymous interval sets,
// prefix matches and an affinity set the kernel fills.
func TestTraceReadsKubeProxyNftablesOverNetlink(t *testing.T) {
	netns.RequireRoot(t)
	env := netns.New(t, "trace-kp")
	env.Node.MustRun(t, "nft", "-f", "../../internal/trace/testdata/kube-proxy-nftables.dump")
	env.Node.MustRun(t, "nft", "add element ip kube-proxy affinity-CARTB2V7-shop/cart/tcp/http__10.244.3.22/9000 { 10.244.9.9 timeout 1h }")
	env.Node.MustRun(t, "ip", "addr", "add", "192.168.10.5/32", "dev", "lo")

	for _, c := range []struct {
		from, to, in string
		want         string
	}{
		{"10.244.1.7", "10.96.12.34:80", "cni0", "dnat [dnat 10.244.1.7:8080 0.2500 masq=true; dnat 10.244.2.8:8080 0.2500 masq=false; dnat 10.244.3.9:8080 0.2500 masq=false; dnat 10.244.4.10:8080 0.2500 masq=false]"},
		{"10.244.1.7", "10.96.44.10:80", "cni0", "reject [reject  1.0000 masq=false]"},
		{"10.244.1.7", "10.96.12.34:81", "cni0", "reject [reject  1.0000 masq=false]"},
		{"10.244.1.7", "10.96.99.99:80", "cni0", "drop [drop  1.0000 masq=false]"},
		{"198.51.100.7", "203.0.113.50:443", "eth0", "dnat [dnat 10.244.1.30:8443 1.0000 masq=true]"},
		{"192.0.2.9", "203.0.113.50:443", "eth0", "drop [drop  1.0000 masq=false]"},
		{"198.51.100.20", "192.168.10.5:30080", "eth0", "dnat [dnat 10.244.1.7:8080 0.2500 masq=true; dnat 10.244.2.8:8080 0.2500 masq=true; dnat 10.244.3.9:8080 0.2500 masq=true; dnat 10.244.4.10:8080 0.2500 masq=true]"},
		{"10.244.9.9", "10.96.20.2:80", "cni0", "dnat [dnat 10.244.3.22:9000 1.0000 masq=false]"},
		{"10.244.9.8", "10.96.20.2:80", "cni0", "dnat [dnat 10.244.2.21:9000 0.5000 masq=false; dnat 10.244.3.22:9000 0.5000 masq=false]"},
	} {
		for _, source := range []string{"netlink", "text"} {
			args := []string{"netns", "exec", env.Node.Name, kproxyBinary(t), "trace", "--mode", "nftables", "--json",
				"--from", c.from, "--to", c.to, "--in-interface", c.in}
			cmd := exec.Command("ip", args...)
			cmd.Env = append(os.Environ(), "KPROXY_TRACE_NFT="+source)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kproxy trace %s: %v\n%s", strings.Join(args[3:], " "), err, out)
			}
			var r trace.Result
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got := summary(&r); got != c.want {
				t.Errorf("%s -> %s read by %s: %s\nwant %s\nnotes %q", c.from, c.to, source, got, c.want, r.Notes)
			}
		}
	}
}
