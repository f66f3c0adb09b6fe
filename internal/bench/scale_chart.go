package bench

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
)

// Fit range of the exponents: the targets are stated from 10k to 100k.
const (
	FitFrom = 10_000
	FitTo   = 100_000
)

// FitExponent is the least-squares slope of log y against log x over the points
// with from <= x <= to: the k of y ~ x^k. ok is false with fewer than two
// distinct x in range or a non-positive value (no logarithm).
func FitExponent(pts [][2]float64, from, to float64) (k float64, ok bool) {
	var lx, ly []float64
	for _, p := range pts {
		if p[0] < from || p[0] > to {
			continue
		}
		if p[0] <= 0 || p[1] <= 0 {
			return 0, false
		}
		lx, ly = append(lx, math.Log(p[0])), append(ly, math.Log(p[1]))
	}
	if len(lx) < 2 {
		return 0, false
	}
	var mx, my float64
	for i := range lx {
		mx += lx[i]
		my += ly[i]
	}
	mx /= float64(len(lx))
	my /= float64(len(ly))
	var sxy, sxx float64
	for i := range lx {
		sxy += (lx[i] - mx) * (ly[i] - my)
		sxx += (lx[i] - mx) * (lx[i] - mx)
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}

// ScaleCost is one cost the scale series charts.
type ScaleCost struct {
	// Name is the file name stem of its chart and its key in the exponent list.
	Name  string
	Title string
	// Unit formats the axis and the table: "s" or "bytes".
	Unit  string
	Value func(r *Result) *float64
}

// ServiceCosts are charted against the number of Services.
var ServiceCosts = []ScaleCost{
	{"cold-sync", "cold full sync", "s", func(r *Result) *float64 { return &r.FullSyncSeconds }},
	{"service-change", "one-Service change", "s", func(r *Result) *float64 {
		if len(r.PartialSyncRuns) == 0 {
			return nil
		}
		return &r.PartialSyncSeconds
	}},
	{"endpoint-change", "one-endpoint change", "s", func(r *Result) *float64 { return r.EndpointChangeSeconds }},
	{"peak-rss", "peak RSS", "bytes", func(r *Result) *float64 {
		if r.PeakRSSBytes == nil {
			return nil
		}
		return ptr(float64(*r.PeakRSSBytes))
	}},
	{"cpu", "CPU of the syncs (kproxy + tools)", "s", func(r *Result) *float64 {
		return ptr(r.CPUKproxySeconds + r.CPUToolsSeconds)
	}},
}

// EndpointCosts are charted against the endpoints of one Service.
var EndpointCosts = []ScaleCost{ServiceCosts[0], ServiceCosts[2]}

func (c ScaleCost) format(v *float64) string {
	if v == nil {
		return "n/a"
	}
	if c.Unit == "bytes" {
		return FormatBytes(*v)
	}
	return FormatSeconds(v)
}

// FormatBytes prints a size in MiB (GiB from 1 GiB on).
func FormatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 10<<20:
		return fmt.Sprintf("%.0f MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
}

// Exponent is one fitted exponent of the scale series.
type Exponent struct {
	Series    Series  `json:"series"`
	Cost      string  `json:"cost"`
	Mode      string  `json:"mode"`
	Endpoints int     `json:"endpoints,omitempty"`
	Exponent  float64 `json:"exponent"`
}

// scaleX is the quantity a series varies.
func scaleX(s Series, r *Result) float64 {
	if s == SeriesEndpoints {
		return float64(r.Endpoints)
	}
	return float64(r.Services)
}

// line gathers the points of one mode (and endpoint count) for one cost.
func scaleLine(rows []ScaleRow, s Series, mode string, endpoints int, c ScaleCost) [][2]float64 {
	var pts [][2]float64
	for i := range rows {
		r := &rows[i]
		if r.Series != s || r.Column() != mode || (s == SeriesServices && r.Endpoints != endpoints) {
			continue
		}
		if v := c.Value(&r.Result); v != nil && *v > 0 {
			pts = append(pts, [2]float64{scaleX(s, &r.Result), *v})
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i][0] < pts[j][0] })
	return pts
}

// scaleModes lists the modes of a series in PreferredOrder, a mode measured in
// the VM as its own column ("ipvs (vm)"): its times are emulated, not this host's.
func scaleModes(rows []ScaleRow, s Series) []string {
	var modes []string
	for _, r := range rows {
		if r.Series == s {
			modes = append(modes, r.Column())
		}
	}
	return OrderModes(modes)
}

func scaleEndpointCounts(rows []ScaleRow) []int {
	seen := map[int]bool{}
	var out []int
	for _, r := range rows {
		if r.Series == SeriesServices && !seen[r.Endpoints] {
			seen[r.Endpoints] = true
			out = append(out, r.Endpoints)
		}
	}
	sort.Ints(out)
	return out
}

// Exponents fits every cost of every mode, per endpoint count for the services
// series, over FitFrom..FitTo.
func Exponents(rows []ScaleRow) []Exponent {
	var out []Exponent
	for _, c := range ServiceCosts {
		for _, e := range scaleEndpointCounts(rows) {
			for _, m := range scaleModes(rows, SeriesServices) {
				if k, ok := FitExponent(scaleLine(rows, SeriesServices, m, e, c), FitFrom, FitTo); ok {
					out = append(out, Exponent{Series: SeriesServices, Cost: c.Name, Mode: m, Endpoints: e, Exponent: k})
				}
			}
		}
	}
	for _, c := range EndpointCosts {
		for _, m := range scaleModes(rows, SeriesEndpoints) {
			if k, ok := FitExponent(scaleLine(rows, SeriesEndpoints, m, 0, c), FitFrom, FitTo); ok {
				out = append(out, Exponent{Series: SeriesEndpoints, Cost: c.Name, Mode: m, Exponent: k})
			}
		}
	}
	return out
}

func legendLabel(mode string, pts [][2]float64) string {
	if k, ok := FitExponent(pts, FitFrom, FitTo); ok {
		return fmt.Sprintf("%s: n^%.2f (fit 10k-100k)", mode, k)
	}
	return mode + ": too few points from 10k on to fit"
}

// WriteScaleSVG draws one cost of the services series: one panel per endpoint
// count, one line per mode, the fitted exponent in the legend.
func WriteScaleSVG(out io.Writer, rows []ScaleRow, c ScaleCost, title string) error {
	modes := scaleModes(rows, SeriesServices)
	var panels []chartPanel
	for _, e := range scaleEndpointCounts(rows) {
		p := chartPanel{title: fmt.Sprintf("%s, %d endpoints/Service", c.Title, e), xLabel: "Services", yFormat: c.tick}
		for _, m := range modes {
			pts := scaleLine(rows, SeriesServices, m, e, c)
			p.lines = append(p.lines, chartLine{mode: m, label: legendLabel(m, pts), color: modeColor(modes, m), pts: pts})
		}
		panels = append(panels, p)
	}
	return writeChart(out, title, panels, nil)
}

// WriteEndpointsSVG draws the endpoints series: one panel per cost against the
// endpoints of the single Service.
func WriteEndpointsSVG(out io.Writer, rows []ScaleRow, title string) error {
	modes := scaleModes(rows, SeriesEndpoints)
	var panels []chartPanel
	for _, c := range EndpointCosts {
		p := chartPanel{title: c.Title + ", one Service", xLabel: "endpoints of the Service", yFormat: c.tick}
		for _, m := range modes {
			pts := scaleLine(rows, SeriesEndpoints, m, 0, c)
			p.lines = append(p.lines, chartLine{mode: m, label: legendLabel(m, pts), color: modeColor(modes, m), pts: pts})
		}
		panels = append(panels, p)
	}
	return writeChart(out, title, panels, nil)
}

func (c ScaleCost) tick(v float64) string { return c.format(&v) }

// WriteScaleTable prints the series as Markdown tables: the services series
// (one row per point), the endpoints series, and the fitted exponents.
func WriteScaleTable(out io.Writer, rows []ScaleRow) error {
	tw := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	if modes := scaleModes(rows, SeriesServices); len(modes) > 0 {
		head := []string{"mode", "Services", "endpoints"}
		for _, c := range ServiceCosts {
			head = append(head, c.Title)
		}
		writeMDRow(tw, head)
		writeMDRow(tw, dashes(len(head)))
		for _, e := range scaleEndpointCounts(rows) {
			for _, m := range modes {
				for _, r := range sortedRows(rows, SeriesServices, m, e) {
					cells := []string{m, FormatCount(r.Services), fmt.Sprint(r.Endpoints)}
					for _, c := range ServiceCosts {
						cells = append(cells, c.format(c.Value(&r.Result)))
					}
					writeMDRow(tw, cells)
				}
			}
		}
		fmt.Fprintln(tw)
	}
	if modes := scaleModes(rows, SeriesEndpoints); len(modes) > 0 {
		head := []string{"mode", "endpoints of one Service"}
		for _, c := range EndpointCosts {
			head = append(head, c.Title)
		}
		head = append(head, "peak RSS")
		writeMDRow(tw, head)
		writeMDRow(tw, dashes(len(head)))
		for _, m := range modes {
			for _, r := range sortedRows(rows, SeriesEndpoints, m, 0) {
				cells := []string{m, FormatCount(r.Endpoints)}
				for _, c := range EndpointCosts {
					cells = append(cells, c.format(c.Value(&r.Result)))
				}
				cells = append(cells, ServiceCosts[3].format(ServiceCosts[3].Value(&r.Result)))
				writeMDRow(tw, cells)
			}
		}
		fmt.Fprintln(tw)
	}
	if exps := Exponents(rows); len(exps) > 0 {
		writeMDRow(tw, []string{"series", "cost", "mode", "endpoints", "exponent 10k-100k"})
		writeMDRow(tw, dashes(5))
		for _, x := range exps {
			e := "-"
			if x.Series == SeriesServices {
				e = fmt.Sprint(x.Endpoints)
			}
			k := fmt.Sprintf("%.2f", x.Exponent)
			if x.Exponent > 1.1 {
				k = "**" + k + "**"
			}
			writeMDRow(tw, []string{string(x.Series), x.Cost, x.Mode, e, k})
		}
	}
	return tw.Flush()
}

func sortedRows(rows []ScaleRow, s Series, mode string, endpoints int) []ScaleRow {
	var out []ScaleRow
	for _, r := range rows {
		if r.Series == s && r.Column() == mode && (s != SeriesServices || r.Endpoints == endpoints) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return scaleX(s, &out[i].Result) < scaleX(s, &out[j].Result) })
	return out
}

func writeMDRow(w io.Writer, cells []string) {
	fmt.Fprintln(w, "| "+strings.Join(cells, "\t| ")+"\t|")
}

func dashes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "---"
	}
	return out
}
