package conntrack

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/sysctl"
)

func procDir(t *testing.T, files map[string]string) sysctl.Dir {
	d := t.TempDir()
	for name, v := range files {
		p := filepath.Join(d, strings.ReplaceAll(name, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sysctl.Dir(d)
}

var allConntrackSysctls = map[string]string{
	"net.netfilter.nf_conntrack_max":                     "65536",
	"net.netfilter.nf_conntrack_tcp_timeout_established": "432000",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "60",
	"net.netfilter.nf_conntrack_udp_timeout":             "30",
	"net.netfilter.nf_conntrack_udp_timeout_stream":      "120",
	"net.netfilter.nf_conntrack_tcp_be_liberal":          "0",
}

func i32(v int32) *int32 { return &v }

func TestSettingsFromConfigAsKubeProxy(t *testing.T) {
	c := kpconfig.KubeProxyConntrackConfiguration{MaxPerCore: i32(32768), Min: i32(131072),
		TCPEstablishedTimeout: &metav1.Duration{Duration: 24 * time.Hour}, TCPCloseWaitTimeout: &metav1.Duration{Duration: time.Hour}}
	if got := SettingsFromConfig(c, 2).Max; got != 131072 {
		t.Fatalf("2 CPUs: max %d, want min 131072", got)
	}
	if got := SettingsFromConfig(c, 8).Max; got != 262144 {
		t.Fatalf("8 CPUs: max %d, want 32768*8", got)
	}
	c.MaxPerCore = i32(0)
	if got := SettingsFromConfig(c, 8).Max; got != 0 {
		t.Fatalf("maxPerCore 0 leaves nf_conntrack_max alone, got %d", got)
	}
}

func TestTunerWritesSettingsAndHashsize(t *testing.T) {
	sys := procDir(t, allConntrackSysctls)
	mod := procDir(t, map[string]string{"hashsize": "16384"})
	var logs bytes.Buffer
	tu := Tuner{Sysctl: sys, Module: mod, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	s := TuneSettings{Max: 262144, TCPEstablished: 24 * time.Hour, TCPCloseWait: time.Hour,
		TCPBeLiberal: true, UDPTimeout: 45 * time.Second, UDPStreamTimeout: 3 * time.Minute}
	if err := tu.Apply(s); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"net.netfilter.nf_conntrack_max": 262144, "net.netfilter.nf_conntrack_tcp_timeout_established": 86400,
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait": 3600, "net.netfilter.nf_conntrack_tcp_be_liberal": 1,
		"net.netfilter.nf_conntrack_udp_timeout": 45, "net.netfilter.nf_conntrack_udp_timeout_stream": 180,
	}
	for name, v := range want {
		if got, err := sysctl.GetInt(sys, name); err != nil || got != v {
			t.Errorf("%s = %d (%v), want %d", name, got, err, v)
		}
	}
	if got, _ := sysctl.GetInt(mod, "hashsize"); got != 65536 {
		t.Errorf("hashsize %d, want max/4 = 65536", got)
	}
	// A larger hash table is left alone, and unset values are not touched.
	mod2 := procDir(t, map[string]string{"hashsize": "1048576"})
	sys2 := procDir(t, allConntrackSysctls)
	if err := (Tuner{Sysctl: sys2, Module: mod2}).Apply(TuneSettings{Max: 262144}); err != nil {
		t.Fatal(err)
	}
	if got, _ := sysctl.GetInt(mod2, "hashsize"); got != 1048576 {
		t.Errorf("hashsize shrunk to %d", got)
	}
	if got, _ := sysctl.GetInt(sys2, "net.netfilter.nf_conntrack_udp_timeout"); got != 30 {
		t.Errorf("unset udpTimeout changed the kernel value to %d", got)
	}
}

// readOnly fails every write the way a read-only /proc/sys does.
type readOnly struct{ sysctl.Interface }

func (readOnly) Set(name, _ string) error {
	return fmt.Errorf("sysctl %s: %w", name, &os.PathError{Op: "open", Path: name, Err: syscall.EROFS})
}

func TestTunerReadOnlyLogsOnceAndSucceeds(t *testing.T) {
	var logs bytes.Buffer
	tu := Tuner{Sysctl: readOnly{procDir(t, allConntrackSysctls)}, Module: readOnly{procDir(t, map[string]string{"hashsize": "1"})},
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := tu.Apply(TuneSettings{Max: 131072, TCPEstablished: 24 * time.Hour}); err != nil {
		t.Fatalf("read-only /proc/sys must not fail the start: %v", err)
	}
	out := logs.String()
	// The hash size follows nf_conntrack_max: not tried when the max could not be set.
	if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, "net.netfilter.nf_conntrack_max=131072") ||
		strings.Contains(out, "hashsize") || !strings.Contains(out, "nf_conntrack_tcp_timeout_established=86400") {
		t.Fatalf("want one warning naming every value to set on the host, got:\n%s", out)
	}
}

func TestTunerOtherErrorsAreReturned(t *testing.T) {
	// No nf_conntrack files at all (module not loaded): an error naming the sysctl.
	err := Tuner{Sysctl: procDir(t, nil)}.Apply(TuneSettings{TCPCloseWait: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "nf_conntrack_tcp_timeout_close_wait") {
		t.Fatalf("err = %v", err)
	}
}
