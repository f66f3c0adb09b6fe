//go:build linux

// Package bench_test runs `kproxy bench sync` and `kproxy bench compare` for real,
// as root, with every mode linked into kproxy: small sizes, so CI proves the
// commands work end to end (namespaces, syncs, traffic through each dataplane).
package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/bench"
	"kproxy.dev/kproxy/internal/cli"
	"kproxy.dev/kproxy/internal/dataplane"
	_ "kproxy.dev/kproxy/internal/dataplane/all"
	"kproxy.dev/kproxy/internal/vm"
)

// TestMain lets this test binary be the kproxy that bench re-execs inside the
// namespace (it runs os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "bench" && os.Args[2] == bench.ChildCommand {
		root := cli.NewRootCommand()
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			os.Stderr.WriteString("kproxy: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func kproxy(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := cli.NewRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kproxy bench needs root")
	}
}

// hostModes are the registered modes this host kernel runs: every one but ipvs
// (the host has no IPVS; its bench runs in the VM).
func hostModes() []string {
	return slices.DeleteFunc(dataplane.Names(), func(m string) bool { return m == "ipvs" })
}

func TestBenchSyncEveryHostMode(t *testing.T) {
	needRoot(t)
	for _, mode := range hostModes() {
		t.Run(mode, func(t *testing.T) {
			out, progress, err := kproxy(t, "bench", "sync", "--mode", mode, "--services", "50,60", "--endpoints", "2", "--json")
			if err != nil {
				t.Fatalf("%v\n%s", err, progress)
			}
			var generic []map[string]any
			if err := json.Unmarshal([]byte(out), &generic); err != nil {
				t.Fatalf("output is not one JSON array: %v\n%s", err, out)
			}
			if len(generic) != 2 {
				t.Fatalf("%d objects, want one per size", len(generic))
			}
			for _, f := range []string{"mode", "services", "endpoints", "rules", "render_seconds", "full_sync_seconds", "partial_sync_seconds", "baseline_apply_seconds"} {
				if _, ok := generic[0][f]; !ok {
					t.Errorf("field %q missing", f)
				}
			}
			var res []bench.Result
			_ = json.Unmarshal([]byte(out), &res)
			if res[1].Services != 60 || res[1].Endpoints != 2 || res[1].Rules < 60 || res[1].FullSyncSeconds <= 0 || res[1].PartialSyncSeconds <= 0 {
				t.Errorf("result %+v: want 60 Services x 2, at least one rule per Service, timed syncs", res[1])
			}
			if !strings.Contains(progress, "cold full sync") {
				t.Errorf("no progress on stderr:\n%s", progress)
			}
		})
	}
}

func TestBenchSyncErrors(t *testing.T) {
	needRoot(t)
	if _, _, err := kproxy(t, "bench", "sync", "--mode", "nosuchmode"); err == nil || !strings.Contains(err.Error(), `"nosuchmode" is not available`) {
		t.Errorf("unknown mode: %v", err)
	}
	if _, _, err := kproxy(t, "bench", "sync", "--mode", hostModes()[0], "--endpoints", "0"); err == nil || !strings.Contains(err.Error(), "--endpoints") {
		t.Errorf("bad --endpoints: %v", err)
	}
}

// TestBenchCompareHostModes runs every host mode and checks that traffic went
// through each dataplane to the backend (a connect latency was measured), that
// ipvs, if linked, is skipped with a reason, and that the chart parses.
func TestBenchCompareHostModes(t *testing.T) {
	needRoot(t)
	svg := filepath.Join(t.TempDir(), "compare.svg")
	out, progress, err := kproxy(t, "bench", "compare", "--services", "50", "--endpoints", "2", "--json", "--plot", svg)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress)
	}
	var res []bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := map[string]bench.Result{}
	for _, r := range res {
		got[r.Mode] = r
	}
	for _, m := range hostModes() {
		r, ok := got[m]
		if !ok {
			t.Errorf("mode %s not measured:\n%s", m, progress)
			continue
		}
		if r.ConnectLastP50 == nil || r.ConnectFirstP99 == nil || r.RoundTripLastP50 == nil || r.ConnectCount < 1000 {
			t.Errorf("mode %s: no connect latency through the dataplane (%q)", m, r.ConnectError)
		}
	}
	// ipvs runs where the kernel has it; elsewhere it must say why it was skipped.
	if _, measured := got["ipvs"]; slices.Contains(dataplane.Names(), "ipvs") && !measured && !strings.Contains(progress, "skipped ipvs: ") {
		t.Errorf("ipvs neither measured nor reported as skipped:\n%s", progress)
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		G []struct {
			Polylines []struct {
				Mode string `xml:"data-mode,attr"`
			} `xml:"polyline"`
		} `xml:"g"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("chart: %v", err)
	}
	if len(doc.G) == 0 {
		t.Fatal("chart has no panels")
	}
	if len(doc.G[0].Polylines) != len(res) {
		t.Errorf("chart: %d polylines in the first panel, want %d (one per mode)", len(doc.G[0].Polylines), len(res))
	}
}

// TestBenchCompareInVM boots the IPVS test kernel with a static kproxy and runs
// `bench compare` inside (what --vm does), for ipvs when it is linked.
func TestBenchCompareInVM(t *testing.T) {
	k := vm.Require(t)
	_ = k
	mode := "ipvs"
	if !slices.Contains(dataplane.Names(), mode) {
		mode = hostModes()[0]
	}
	exe := vm.BuildBinary(t, "kproxy.dev/kproxy/cmd/kproxy")
	var console bytes.Buffer
	res, err := bench.RunInVM(context.Background(), bench.VMOptions{
		Exe: exe, Modes: []string{mode}, Services: []int{20}, Endpoints: 2, Connects: 1000, PartialRuns: 1, Progress: &console,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	if len(res) != 1 || res[0].Mode != mode || res[0].Where != "vm" || res[0].Rules < 20 || res[0].ConnectLastP50 == nil {
		t.Fatalf("results %+v: want one %s result from the VM with a connect latency\n%s", res, mode, console.String())
	}
}

func TestBenchCompareFromJSON(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "r.json")
	data := `[{"mode":"iptables","services":1000,"endpoints":3,"rules":11008,"render_seconds":0.01,"full_sync_seconds":0.3,"partial_sync_seconds":0.03,"baseline_apply_seconds":0.28,"connect_last_p50_seconds":0.00002,"roundtrip_last_p50_seconds":0.00003},
	{"mode":"ipvs","where":"vm","services":1000,"endpoints":3,"rules":9000,"render_seconds":null,"full_sync_seconds":17,"partial_sync_seconds":0.07,"baseline_apply_seconds":null}]`
	if err := os.WriteFile(saved, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "c.svg")
	out, stderr, err := kproxy(t, "bench", "compare", "--from-json", saved, "--plot", svg)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"iptables  ipvs (vm)", "11,008", "17.0 s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte(`data-mode="ipvs (vm)"`)) {
		t.Errorf("chart %s: %v", svg, err)
	}
	if _, _, err := kproxy(t, "bench", "compare", "--from-json", filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "--from-json") {
		t.Errorf("missing file: %v", err)
	}
}

// TestBenchScaleRestartable runs a tiny scale series of two modes for real, then
// again: the second run measures nothing (every point has its row) and still
// writes the table and one chart per cost.
func TestBenchScaleRestartable(t *testing.T) {
	needRoot(t)
	modes := []string{"nftables", "userspace"}
	dir := t.TempDir()
	args := []string{"bench", "scale", "--modes", strings.Join(modes, ","), "--services", "20,30", "--endpoints", "2",
		"--one-service-endpoints", "150", "--partial-runs", "1", "--endpoint-runs", "1", "--out", dir}
	out, progress, err := kproxy(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress)
	}
	rows, _ := filepath.Glob(filepath.Join(dir, "*-*x*.json"))
	if len(rows) != 6 {
		t.Fatalf("%d row files %v, want 6 (2 modes x 2 sizes + 2 endpoint points)", len(rows), rows)
	}
	var r bench.Result
	b, _ := os.ReadFile(filepath.Join(dir, "endpoints-nftables-1x150.json"))
	if err := json.Unmarshal(b, &r); err != nil || r.Endpoints != 150 || r.EndpointChangeSeconds == nil || *r.EndpointChangeSeconds <= 0 || r.PeakRSSBytes == nil {
		t.Fatalf("endpoints row %s: %v, want a timed one-endpoint change and a peak RSS", b, err)
	}
	if !strings.Contains(out, "| nftables") || !strings.Contains(progress, "[1/6] userspace, 20 Services x 2 endpoints: done in") {
		t.Errorf("table or progress missing:\n%s\n%s", out, progress)
	}
	for _, f := range []string{"cold-sync.svg", "service-change.svg", "endpoint-change.svg", "peak-rss.svg", "cpu.svg", "endpoints.svg", "table.md", "scale.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	_, progress, err = kproxy(t, args...)
	if err != nil || strings.Count(progress, "done before, skipped") != 6 || strings.Contains(progress, ": start") {
		t.Fatalf("re-run: %v; want all 6 points skipped:\n%s", err, progress)
	}
}
