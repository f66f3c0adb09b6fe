//go:build linux

package conntrack

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/sysctl"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelTuneInNamespace applies the per-namespace conntrack timeouts in a fresh
// network namespace and reads them back with sysctl(8). nf_conntrack_max is global,
// so a non-initial namespace cannot write it: that must be one warning, not a
// failure. (The hash size under /sys is global and not touched here.)
func TestKernelTuneInNamespace(t *testing.T) {
	netns.RequireRoot(t)
	env := netns.New(t, "ct-tune")
	var logs bytes.Buffer
	tu := Tuner{Sysctl: sysctl.New(), Log: slog.New(slog.NewTextHandler(&logs, nil))}
	s := TuneSettings{Max: 1 << 30, TCPEstablished: 2 * time.Hour, TCPCloseWait: 90 * time.Second,
		UDPTimeout: 33 * time.Second, UDPStreamTimeout: 150 * time.Second, TCPBeLiberal: true}
	if err := env.Node.Do(func() error { return tu.Apply(s) }); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"net.netfilter.nf_conntrack_tcp_timeout_established": "7200",
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "90",
		"net.netfilter.nf_conntrack_udp_timeout":             "33",
		"net.netfilter.nf_conntrack_udp_timeout_stream":      "150",
		"net.netfilter.nf_conntrack_tcp_be_liberal":          "1",
	} {
		if got := strings.TrimSpace(env.Node.MustRun(t, "sysctl", "-n", name)); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if !strings.Contains(logs.String(), "nf_conntrack_max=1073741824") {
		t.Errorf("want a warning naming nf_conntrack_max (read-only outside the initial namespace), got:\n%s", logs.String())
	}
}
