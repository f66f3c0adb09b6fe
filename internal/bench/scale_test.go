package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestFitExponent(t *testing.T) {
	pow := func(k, c float64, xs ...float64) [][2]float64 {
		var out [][2]float64
		for _, x := range xs {
			out = append(out, [2]float64{x, c * math.Pow(x, k)})
		}
		return out
	}
	for _, c := range []struct {
		name string
		pts  [][2]float64
		want float64
		ok   bool
	}{
		{"linear", pow(1, 3e-5, 10_000, 50_000, 100_000), 1, true},
		{"quadratic", pow(2, 1e-9, 10_000, 30_000, 100_000), 2, true},
		{"constant", pow(0, 0.02, 10_000, 100_000), 0, true},
		// 1k lies outside the fit range: its steep start must not count.
		{"range", append(pow(1, 1, 10_000, 50_000, 100_000), [2]float64{1000, 1e-9}), 1, true},
		// Least squares, not the end points: (1,1),(2,4),(4,4) in log2 space is
		// x=0,1,2 y=0,2,2: slope 1.
		{"least-squares", [][2]float64{{10_000, 1}, {20_000, 4}, {40_000, 4}}, 1, true},
		{"one point", pow(1, 1, 1000, 10_000), 0, false},
		{"same x", [][2]float64{{10_000, 1}, {10_000, 2}}, 0, false},
		{"zero value", [][2]float64{{10_000, 0}, {100_000, 2}}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, ok := FitExponent(c.pts, FitFrom, FitTo)
			if ok != c.ok || (ok && math.Abs(k-c.want) > 1e-9) {
				t.Fatalf("FitExponent = %v, %v; want %v, %v", k, ok, c.want, c.ok)
			}
		})
	}
}

// fakeMeasure counts calls per point and fails the points in fail.
type fakeMeasure struct {
	calls []ScalePoint
	fail  map[ScalePoint]bool
}

func (f *fakeMeasure) measure(_ context.Context, p ScalePoint) (*Result, error) {
	f.calls = append(f.calls, p)
	if f.fail[p] {
		return nil, errors.New("boom")
	}
	rss := int64(p.Services * 1000)
	return &Result{Mode: p.Mode, Services: p.Services, Endpoints: p.Endpoints,
		FullSyncSeconds: float64(p.Services) / 1e4, PartialSyncSeconds: 0.01, PartialSyncRuns: []float64{0.01}, PeakRSSBytes: &rss}, nil
}

func TestRunScaleSkipsFinishedPointsAndResumes(t *testing.T) {
	dir := t.TempDir()
	points := ScalePoints([]string{"iptables", "nftables"}, []int{10_000, 1000}, []int{3}, []int{100})
	if len(points) != 6 || points[0].Services != 1000 || points[4].Series != SeriesEndpoints {
		t.Fatalf("points %v: want 2 modes x 2 sizes ascending, then the endpoints series", points)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// First run: interrupted while measuring the third point.
	first := &fakeMeasure{}
	var progress bytes.Buffer
	_, err := RunScale(ctx, points, ScaleOptions{Store: ScaleStore{Dir: dir}, Progress: &progress,
		Measure: func(c context.Context, p ScalePoint) (*Result, error) {
			if len(first.calls) == 2 {
				cancel()
				return nil, c.Err()
			}
			return first.measure(c, p)
		}})
	if !errors.Is(err, context.Canceled) || len(first.calls) != 2 {
		t.Fatalf("interrupted run: err %v after %d points, want context.Canceled after 2", err, len(first.calls))
	}
	if !strings.Contains(progress.String(), "[1/6] iptables, 1,000 Services x 3 endpoints: start") ||
		!strings.Contains(progress.String(), "[1/6] iptables, 1,000 Services x 3 endpoints: done in") {
		t.Errorf("progress lacks the start and done lines of point 1:\n%s", progress.String())
	}
	// No half-written rows: exactly the two finished points.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 {
		t.Fatalf("files after the interrupted run: %v, want the 2 finished rows", files)
	}

	// Second run resumes: only the 4 unfinished points are measured.
	second := &fakeMeasure{}
	progress.Reset()
	run, err := RunScale(context.Background(), points, ScaleOptions{Store: ScaleStore{Dir: dir}, Measure: second.measure, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.calls) != 4 || second.calls[0] != points[2] {
		t.Fatalf("resumed run measured %v, want the 4 points from %v on", second.calls, points[2])
	}
	if len(run.Rows) != 6 || run.Rows[0].Services != 1000 || run.Rows[0].Series != SeriesServices {
		t.Fatalf("rows %+v: want all 6, saved ones included", run.Rows)
	}
	if !strings.Contains(progress.String(), "[1/6] iptables, 1,000 Services x 3 endpoints: done before, skipped") {
		t.Errorf("progress does not say point 1 was skipped:\n%s", progress.String())
	}

	// Third run with Force measures everything again.
	third := &fakeMeasure{}
	if _, err := RunScale(context.Background(), points, ScaleOptions{Store: ScaleStore{Dir: dir}, Force: true, Measure: third.measure}); err != nil {
		t.Fatal(err)
	}
	if len(third.calls) != 6 {
		t.Fatalf("forced run measured %d points, want 6", len(third.calls))
	}
}

func TestRunScaleFailedPointIsRetriedAndStopsItsLargerSizes(t *testing.T) {
	dir := t.TempDir()
	points := ScalePoints([]string{"iptables", "nftables"}, []int{1000, 10_000, 50_000}, []int{3}, nil)
	bad := ScalePoint{Series: SeriesServices, Mode: "iptables", Services: 10_000, Endpoints: 3}
	f := &fakeMeasure{fail: map[ScalePoint]bool{bad: true}}
	run, err := RunScale(context.Background(), points, ScaleOptions{Store: ScaleStore{Dir: dir}, Measure: f.measure})
	if err != nil {
		t.Fatal(err)
	}
	// iptables 50k is not tried after 10k failed; nftables goes on.
	if len(f.calls) != 5 || len(run.Rows) != 4 || len(run.Failed) != 2 {
		t.Fatalf("calls %v rows %d failed %v; want 5 calls, 4 rows, 2 failures", f.calls, len(run.Rows), run.Failed)
	}
	if run.Failed[0].Point != bad || !strings.Contains(run.Failed[0].Err.Error(), "boom") {
		t.Errorf("first failure %+v, want %v: boom", run.Failed[0], bad)
	}
	// A failed point leaves no row: the next run tries it again.
	again := &fakeMeasure{}
	if _, err := RunScale(context.Background(), points, ScaleOptions{Store: ScaleStore{Dir: dir}, Measure: again.measure}); err != nil {
		t.Fatal(err)
	}
	if len(again.calls) != 2 || again.calls[0] != bad {
		t.Fatalf("re-run measured %v, want the failed point and the one after it", again.calls)
	}
}

func TestScaleStoreRejectsCorruptRow(t *testing.T) {
	dir := t.TempDir()
	p := ScalePoint{Series: SeriesServices, Mode: "nftables", Services: 1000, Endpoints: 3}
	if err := os.WriteFile(filepath.Join(dir, p.File()), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (ScaleStore{Dir: dir}).Load(p); err == nil || !strings.Contains(err.Error(), p.File()) {
		t.Fatalf("Load of a corrupt row: %v, want an error naming %s", err, p.File())
	}
}

func TestScaleSVGLegendCarriesExponent(t *testing.T) {
	f := &fakeMeasure{}
	var rows []ScaleRow
	for _, p := range ScalePoints([]string{"nftables", "iptables"}, []int{1000, 10_000, 100_000}, []int{3, 5}, nil) {
		r, _ := f.measure(context.Background(), p)
		rows = append(rows, ScaleRow{Series: p.Series, Result: *r})
	}
	var buf bytes.Buffer
	if err := WriteScaleSVG(&buf, rows, ServiceCosts[0], "t & t"); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Panels []struct {
			Title     string `xml:"data-title,attr"`
			Polylines []struct {
				Mode   string `xml:"data-mode,attr"`
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
		} `xml:"g"`
		Texts []string `xml:"text"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("SVG not well-formed: %v", err)
	}
	if len(doc.Panels) != 2 || doc.Panels[1].Title != "cold full sync, 5 endpoints/Service" {
		t.Fatalf("panels %+v, want one per endpoint count", doc.Panels)
	}
	if p := doc.Panels[0].Polylines; len(p) != 2 || p[0].Mode != "iptables" || len(strings.Fields(p[0].Points)) != 3 {
		t.Fatalf("polylines %+v, want iptables then nftables with 3 points", p)
	}
	// The fake's full sync is linear in the Services: exponent 1.00.
	if !strings.Contains(buf.String(), "iptables: n^1.00 (fit 10k-100k)") {
		t.Errorf("legend lacks the fitted exponent:\n%s", buf.String())
	}
	var table bytes.Buffer
	if err := WriteScaleTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\| services +\| cold-sync +\| iptables +\| 3 +\| 1\.00`).MatchString(table.String()) || !strings.Contains(table.String(), "95 MiB") {
		t.Errorf("table lacks the exponent row or the RSS of 100k:\n%s", table.String())
	}
}

// A row measured in the VM is its own column, never mistaken for this host's.
func TestScaleRowsFromTheVMAreMarked(t *testing.T) {
	f := &fakeMeasure{}
	var rows []ScaleRow
	for _, p := range ScalePoints([]string{"iptables", "ipvs"}, []int{1000, 10_000}, []int{3}, nil) {
		r, _ := f.measure(context.Background(), p)
		if p.Mode == "ipvs" {
			r.Where = "vm"
		}
		rows = append(rows, ScaleRow{Series: p.Series, Result: *r})
	}
	var table bytes.Buffer
	if err := WriteScaleTable(&table, rows); err != nil {
		t.Fatal(err)
	}
	if n := regexp.MustCompile(`(?m)^\| ipvs \(vm\) +\| 1`).FindAllString(table.String(), -1); len(n) != 2 || strings.Contains(table.String(), "| ipvs  ") {
		t.Errorf("want two services rows of \"ipvs (vm)\" and none of plain ipvs:\n%s", table.String())
	}
	var buf bytes.Buffer
	if err := WriteScaleSVG(&buf, rows, ServiceCosts[0], "t"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `data-mode="ipvs (vm)"`) {
		t.Errorf("the chart has no line for \"ipvs (vm)\":\n%s", buf.String())
	}
}
