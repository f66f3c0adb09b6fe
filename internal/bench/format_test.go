package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/golden"
)

func sampleResults() []Result {
	return []Result{
		{Mode: "iptables", Services: 1000, Endpoints: 3, Rules: 15012, RenderSeconds: ptr(0.0041),
			FullSyncSeconds: 0.95, PartialSyncSeconds: 0.021, BaselineApplySeconds: ptr(0.9),
			PartialSyncRuns: []float64{0.02, 0.021, 0.03}, CPUKproxySeconds: 0.05, CPUToolsSeconds: 0.8,
			PeakRSSBytes: func() *int64 { v := int64(187 << 20); return &v }()},
		{Mode: "userspace", Services: 10000, Endpoints: 3, Rules: 10000, FullSyncSeconds: 0.3, PartialSyncSeconds: 0.0004},
	}
}

// The JSON field names are an interface named in the issues: the golden file
// pins them, so renaming one fails here.
func TestResultJSONFieldNames(t *testing.T) {
	b, err := json.MarshalIndent(sampleResults(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "results.json", append(b, '\n'))
	var generic []map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"mode", "services", "endpoints", "rules", "render_seconds", "full_sync_seconds", "partial_sync_seconds", "baseline_apply_seconds", "peak_rss_bytes"} {
		if _, ok := generic[1][f]; !ok {
			t.Errorf("field %q missing (even when not measured it must be present, as null)", f)
		}
	}
	if generic[1]["baseline_apply_seconds"] != nil {
		t.Errorf("unmeasured baseline = %v, want null", generic[1]["baseline_apply_seconds"])
	}
}

func TestSyncTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSyncTable(&buf, sampleResults()); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "sync-table.txt", buf.Bytes())
	if !strings.Contains(buf.String(), "15,012") || !strings.Contains(buf.String(), "1.06x") {
		t.Errorf("table lacks the rule count or the full/baseline ratio:\n%s", buf.String())
	}
}

func TestFormatSeconds(t *testing.T) {
	for _, c := range []struct {
		in   *float64
		want string
	}{
		{nil, "n/a"}, {ptr(121.9), "122 s"}, {ptr(12.34), "12.3 s"}, {ptr(1.234), "1.23 s"}, {ptr(0.2), "200 ms"},
		{ptr(0.0042), "4.2 ms"}, {ptr(0.000031), "31 µs"},
	} {
		if got := FormatSeconds(c.in); got != c.want {
			t.Errorf("FormatSeconds(%v) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := FormatCount(1234567); got != "1,234,567" {
		t.Errorf("FormatCount = %q", got)
	}
	if got := FormatCount(999); got != "999" {
		t.Errorf("FormatCount(999) = %q", got)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Microsecond}, {99, 99 * time.Microsecond}, {100, 100 * time.Microsecond}, {1, time.Microsecond}, {0.1, time.Microsecond}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if s[0] != 100*time.Microsecond {
		t.Error("Percentile sorted its input in place")
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty input: want 0")
	}
	if got := Percentile([]time.Duration{3, 1, 2}, 50); got != 2 {
		t.Errorf("p50 of 3 samples = %v, want 2", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}
