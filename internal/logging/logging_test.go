package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// klogLine is klog's text header: severity, mmdd hh:mm:ss.uuuuuu, pid, file:line].
var klogLine = regexp.MustCompile(`^([IWE])\d{4} \d{2}:\d{2}:\d{2}\.\d{6} +\d+ ([a-z_]+\.go):\d+\] (.*)$`)

func lines(b *bytes.Buffer) []string {
	s := strings.TrimRight(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestTextIsKlogFormat(t *testing.T) {
	var out bytes.Buffer
	log := New(Options{ErrOut: &out, Verbosity: 2})
	log.Info("synced", "servicePorts", 3, "took", 1500*time.Millisecond, "mode", "nftables", "full", true,
		"families", []string{"IPv4", "IPv6"})
	log.Warn("odd", "err", errors.New("boom \"x\""))
	log.With("source", "kube").WithGroup("g").Error("failed", "k", "v")
	got := lines(&out)
	want := []struct{ sev, rest string }{
		{"I", `"synced" servicePorts=3 took="1.5s" mode="nftables" full=true families=["IPv4","IPv6"]`},
		{"W", `"odd" err="boom \"x\""`},
		{"E", `"failed" source="kube" g.k="v"`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines: %q", len(got), got)
	}
	for i, w := range want {
		m := klogLine.FindStringSubmatch(got[i])
		if m == nil {
			t.Fatalf("line %d is not klog's format: %q", i, got[i])
		}
		if m[1] != w.sev || m[2] != "logging_test.go" || m[3] != w.rest {
			t.Errorf("line %d = %q (severity %s, caller %s, rest %s), want %s ... %s", i, got[i], m[1], m[2], m[3], w.sev, w.rest)
		}
	}
}

func TestVerbosityLevels(t *testing.T) {
	for _, tc := range []struct {
		v    int
		want []string
	}{
		{0, []string{"v0"}},
		{2, []string{"v0", "v2"}},
		{4, []string{"v0", "v2", "v4"}},
	} {
		var out bytes.Buffer
		log := New(Options{ErrOut: &out, Verbosity: tc.v})
		log.Info("v0")
		log.Log(t.Context(), V(2), "v2")
		log.Debug("v4")
		var msgs []string
		for _, l := range lines(&out) {
			m := klogLine.FindStringSubmatch(l)
			msgs = append(msgs, strings.Trim(m[3], `"`))
		}
		if strings.Join(msgs, ",") != strings.Join(tc.want, ",") {
			t.Errorf("-v=%d wrote %v, want %v", tc.v, msgs, tc.want)
		}
	}
}

func TestJSONLayout(t *testing.T) {
	var out bytes.Buffer
	log := New(Options{Format: FormatJSON, ErrOut: &out, Verbosity: 2})
	log.Log(t.Context(), V(2), "synced", "took", "3ms")
	log.Error("sync failed", "err", errors.New("boom"))
	got := lines(&out)
	if len(got) != 2 {
		t.Fatalf("lines: %q", got)
	}
	var info, errl map[string]any
	if err := json.Unmarshal([]byte(got[0]), &info); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got[1]), &errl); err != nil {
		t.Fatal(err)
	}
	if _, ok := info["ts"].(float64); !ok || info["msg"] != "synced" || info["v"] != float64(2) || info["took"] != "3ms" {
		t.Errorf("info line = %v", info)
	}
	if !strings.HasSuffix(info["caller"].(string), "logging/logging_test.go:"+strings.Split(info["caller"].(string), ":")[1]) {
		t.Errorf("caller = %v", info["caller"])
	}
	if _, ok := errl["v"]; ok || errl["err"] != "boom" || errl["msg"] != "sync failed" {
		t.Errorf("error line = %v", errl)
	}
	for _, k := range []string{"time", "level", "source"} {
		if _, ok := info[k]; ok {
			t.Errorf("slog's own key %q left in: %v", k, info)
		}
	}
}

func TestSplitStream(t *testing.T) {
	var out, errOut bytes.Buffer
	log := New(Options{ErrOut: &errOut, Out: &out, SplitStream: true})
	log.Info("i")
	log.Warn("w")
	log.Error("e")
	if len(lines(&out)) != 2 || len(lines(&errOut)) != 1 || !strings.Contains(errOut.String(), `"e"`) {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

func TestValuesAreTruncated(t *testing.T) {
	var out bytes.Buffer
	log := New(Options{ErrOut: &out})
	huge := strings.Repeat("x", 10*MaxValueBytes)
	log.Warn(huge, "name", huge, "err", errors.New(huge))
	if out.Len() > 4*MaxValueBytes || strings.Count(out.String(), "bytes truncated") != 3 {
		t.Errorf("line of %d bytes: %.200s", out.Len(), out.String())
	}
}

func TestRepeatedErrorsAreWrittenOncePerWindow(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	log := New(Options{ErrOut: &out, RepeatWindow: time.Minute, Now: func() time.Time { return now }})
	for range 5 {
		log.Error("Failed to watch", "err", "connection refused")
		log.Info("info is never held back")
	}
	log.Error("Failed to watch", "err", "no route to host")
	if got := strings.Count(out.String(), "Failed to watch"); got != 2 {
		t.Errorf("want the first and the distinct error, got %d:\n%s", got, out.String())
	}
	if got := strings.Count(out.String(), "info is never held back"); got != 5 {
		t.Errorf("info lines = %d", got)
	}
	now = now.Add(time.Minute)
	log.Error("Failed to watch", "err", "connection refused")
	if !strings.Contains(out.String(), `"Failed to watch" err="connection refused" repeated=4`) {
		t.Errorf("after the window the error is written with its count:\n%s", out.String())
	}
}

// client-go logs through klog: its lines must come out of kproxy's logger, in
// kproxy's format, filtered by the same -v.
func TestKlogIsRoutedThroughTheLogger(t *testing.T) {
	var out bytes.Buffer
	log := New(Options{ErrOut: &out, Verbosity: 2})
	RouteKlog(log, 2)
	defer klog.ClearLogger()
	klog.ErrorS(errors.New("dial tcp 10.0.0.1:6443: connect: connection refused"), "Failed to watch", "type", "*v1.Service")
	klog.V(2).InfoS("at v2")
	klog.V(3).InfoS("at v3")
	got := out.String()
	if !strings.Contains(got, `"Failed to watch" err="dial tcp 10.0.0.1:6443: connect: connection refused" type="*v1.Service"`) {
		t.Errorf("klog error not routed:\n%s", got)
	}
	if !strings.Contains(got, `"at v2"`) || strings.Contains(got, "at v3") {
		t.Errorf("klog verbosity not applied:\n%s", got)
	}
	for _, l := range lines(&out) {
		if m := klogLine.FindStringSubmatch(l); m == nil || m[2] != "logging_test.go" {
			t.Errorf("klog line without its caller: %q", l)
		}
	}
}

func TestSetVerbosityWhileRunning(t *testing.T) {
	var out bytes.Buffer
	level := &slog.LevelVar{}
	log := New(Options{ErrOut: &out, Level: level})
	RouteKlog(log, 0)
	defer klog.ClearLogger()
	log.Log(t.Context(), V(2), "hidden")
	klog.V(2).InfoS("klog hidden")
	SetVerbosity(level, 2)
	log.Log(t.Context(), V(2), "shown")
	klog.V(2).InfoS("klog shown")
	got := out.String()
	if strings.Contains(got, "hidden") || !strings.Contains(got, `"shown"`) || !strings.Contains(got, `"klog shown"`) {
		t.Errorf("log:\n%s", got)
	}
	SetVerbosity(level, 0)
}
