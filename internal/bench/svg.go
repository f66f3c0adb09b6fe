package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The chart is hand-written SVG (no dependency): one panel per metric, Services
// on a log x axis, the metric on a log y axis (the modes differ by orders of
// magnitude), one polyline per mode in each panel.

// plotPanel is one metric against the number of Services.
type plotPanel struct {
	title string
	value func(r *Result) *float64
}

var plotPanels = []plotPanel{
	{"cold full sync (s)", func(r *Result) *float64 { return &r.FullSyncSeconds }},
	{"one-Service change (s)", func(r *Result) *float64 { return &r.PartialSyncSeconds }},
	// The round trip, not connect() alone: in userspace mode connect() completes
	// at the local relay, so only the round trip reaches the backend in every mode.
	{"new connection to last Service, p50 (s)", func(r *Result) *float64 { return r.RoundTripLastP50 }},
}

var modeColors = map[string]string{
	"userspace": "#7f7f7f", "iptables": "#d62728", "nftables": "#1f77b4", "ipvs": "#2ca02c",
}

var extraColors = []string{"#9467bd", "#ff7f0e", "#8c564b", "#e377c2"}

const (
	panelW, panelH = 320, 260
	marginL        = 70
	marginR        = 20
	marginT        = 50
	marginB        = 50
)

// WriteSVG draws the comparison. title goes above the panels (command, date).
func WriteSVG(out io.Writer, c *Comparison, title string) error {
	modes := c.Modes()
	var panels []chartPanel
	for _, p := range plotPanels {
		panels = append(panels, comparePanel(c, modes, p))
	}
	var legend []chartLine
	for _, m := range modes {
		label := m
		if strings.HasSuffix(m, " (vm)") {
			label = strings.TrimSuffix(m, " (vm)") + " (measured in the qemu VM, emulated: slower)"
		}
		legend = append(legend, chartLine{mode: m, label: label, color: modeColor(modes, m)})
	}
	return writeChart(out, title, panels, legend)
}

// comparePanel is one metric of the comparison, one line per column.
func comparePanel(c *Comparison, modes []string, p plotPanel) chartPanel {
	cp := chartPanel{title: p.title, xLabel: "Services", yFormat: formatSecondsTick}
	for _, m := range modes {
		l := chartLine{mode: m, label: m, color: modeColor(modes, m)}
		for _, n := range c.Sizes() {
			r := c.find(m, n)
			if r == nil {
				continue
			}
			if v := p.value(r); v != nil && *v > 0 {
				l.pts = append(l.pts, [2]float64{float64(n), *v})
			}
		}
		cp.lines = append(cp.lines, l)
	}
	return cp
}

func formatSecondsTick(v float64) string { return FormatSeconds(&v) }

// chartPanel is one log-log panel: a metric against a count, one line per mode.
type chartPanel struct {
	title, xLabel string
	yFormat       func(float64) string
	lines         []chartLine
}

// chartLine is one polyline; mode is its data-mode attribute, label its legend.
type chartLine struct {
	mode, label, color string
	pts                [][2]float64
}

// writeChart draws the panels side by side. With a legend, it is drawn once
// under all panels; without one, each panel has its own legend of its lines'
// labels (which then can carry per-panel figures, such as a fitted exponent).
func writeChart(out io.Writer, title string, panels []chartPanel, legend []chartLine) error {
	rows := len(legend)
	if legend == nil {
		for _, p := range panels {
			rows = max(rows, len(p.lines))
		}
	}
	// About 7 px per character of the 14 px title, so a long title is not cut.
	width := max(len(panels)*(panelW+marginL+marginR), 20+7*len(title))
	height := panelH + marginT + marginB + 30 + 20*rows
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	for i, p := range panels {
		x0 := float64(i*(panelW+marginL+marginR) + marginL)
		drawPanel(&b, p, x0, marginT)
		if legend == nil {
			drawLegend(&b, p.lines, x0-marginL+10, panelH+marginT+marginB)
		}
	}
	if legend != nil {
		drawLegend(&b, legend, 10, panelH+marginT+marginB)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(out, b.String())
	return err
}

// modeColor colours a column by its mode, so "iptables (vm)" matches "iptables".
func modeColor(modes []string, m string) string {
	m, _, _ = strings.Cut(m, " (")
	if c, ok := modeColors[m]; ok {
		return c
	}
	k := 0
	for _, x := range modes {
		if _, known := modeColors[x]; known {
			continue
		}
		if x == m {
			return extraColors[k%len(extraColors)]
		}
		k++
	}
	return "#000000"
}

// dash draws columns measured elsewhere (the VM) dashed.
func dash(column string) string {
	if strings.Contains(column, " (") {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// logAxis maps [lo, hi] (powers of ten around the data) to pixels.
type logAxis struct {
	lo, hi float64
	// pad widens the drawn range by this factor on each side, so points at the
	// first and last tick do not sit on the frame.
	pad float64
}

func newLogAxis(values []float64) logAxis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return logAxis{lo: 1, hi: 10}
	}
	a := logAxis{lo: math.Pow(10, math.Floor(math.Log10(lo))), hi: math.Pow(10, math.Ceil(math.Log10(hi)))}
	if a.hi <= a.lo {
		a.hi = a.lo * 10
	}
	return a
}

// frac is where v sits on the axis, 0..1.
func (a logAxis) frac(v float64) float64 {
	pad := math.Max(a.pad, 1)
	lo, hi := math.Log10(a.lo/pad), math.Log10(a.hi*pad)
	return (math.Log10(v) - lo) / (hi - lo)
}

func (a logAxis) ticks() []float64 {
	var out []float64
	for v := a.lo; v <= a.hi*1.0001; v *= 10 {
		out = append(out, v)
	}
	return out
}

func drawPanel(b *strings.Builder, p chartPanel, x0, y0 float64) {
	var xs, ys []float64
	for _, l := range p.lines {
		for _, pt := range l.pts {
			xs, ys = append(xs, pt[0]), append(ys, pt[1])
		}
	}
	xa, ya := newLogAxis(xs), newLogAxis(ys)
	xa.pad = 1.4
	px := func(v float64) float64 { return x0 + xa.frac(v)*panelW }
	py := func(v float64) float64 { return y0 + panelH - ya.frac(v)*panelH }
	fmt.Fprintf(b, `<g class="panel" data-title="%s">`+"\n", html.EscapeString(p.title))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", x0, y0-10, html.EscapeString(p.title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", x0, y0, panelW, panelH)
	for _, t := range ya.ticks() {
		y := py(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+panelW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-5, y+4, html.EscapeString(p.yFormat(t)))
	}
	for _, t := range xa.ticks() {
		x := px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, y0, x, y0+panelH)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, y0+panelH+16, FormatCount(int(t)))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+panelW/2, y0+panelH+34, html.EscapeString(p.xLabel))
	for _, l := range p.lines {
		var pts []string
		for _, pt := range l.pts {
			if pt[0] > 0 && pt[1] > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt[0]), py(pt[1])))
			}
		}
		fmt.Fprintf(b, `<polyline data-mode="%s" points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", html.EscapeString(l.mode), strings.Join(pts, " "), l.color, dash(l.mode))
		for _, pt := range pts {
			xy := strings.SplitN(pt, ",", 2)
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], l.color)
		}
	}
	b.WriteString("</g>\n")
}

func drawLegend(b *strings.Builder, lines []chartLine, x, y float64) {
	for i, l := range lines {
		yy := y + float64(i)*20
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", x, yy, x+30, yy, l.color, dash(l.mode))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x+40, yy+4, html.EscapeString(l.label))
	}
}
