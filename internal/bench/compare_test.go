package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/golden"
)

func sampleComparison() *Comparison {
	mk := func(mode string, n int, full, partial, first, last float64) Result {
		return Result{Mode: mode, Services: n, Endpoints: 3, Rules: n * 5, FullSyncSeconds: full, PartialSyncSeconds: partial,
			ConnectCount: 1000, ConnectFirstP50: ptr(first), ConnectFirstP99: ptr(first * 10),
			ConnectLastP50: ptr(last), ConnectLastP99: ptr(last * 10),
			RoundTripFirstP50: ptr(first + 20e-6), RoundTripLastP50: ptr(last + 20e-6), RoundTripLastP99: ptr(last*10 + 20e-6), CPUKproxySeconds: full / 10, CPUToolsSeconds: full / 2}
	}
	return &Comparison{
		Results: []Result{
			mk("nftables", 1000, 0.5, 0.03, 30e-6, 30e-6),
			mk("iptables", 1000, 0.9, 0.02, 30e-6, 80e-6),
			mk("userspace", 1000, 0.05, 0.001, 60e-6, 61e-6),
			mk("iptables", 10000, 4.5, 0.15, 30e-6, 320e-6),
			mk("nftables", 10000, 4.0, 0.3, 30e-6, 31e-6),
			mk("userspace", 10000, 0.6, 0.002, 62e-6, 63e-6),
			func() Result { r := mk("ipvs", 1000, 0.2, 0.01, 40e-6, 40e-6); r.Where = "vm"; return r }(),
			func() Result { r := mk("iptables", 1000, 3, 0.1, 40e-6, 90e-6); r.Where = "vm"; return r }(),
		},
		Skipped: []Skipped{{Mode: "ebpf", Reason: "kernel lacks it"}},
	}
}

func TestCompareTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCompareTable(&buf, sampleComparison()); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "compare-table.txt", buf.Bytes())
	out := buf.String()
	header := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "1,000 Services") {
			header = l
		}
	}
	fields := strings.Fields(header)
	want := []string{"userspace", "iptables", "nftables", "iptables", "(vm)", "ipvs", "(vm)"}
	if got := strings.Join(fields[5:12], " "); got != strings.Join(want, " ") {
		t.Errorf("columns %q, want %q (mode order, ipvs marked as measured in the VM)", got, want)
	}
	for _, s := range []string{"iptables ~200 ms, IPVS ~20 ms", "iptables ~5 s, IPVS ~100 ms", "320 µs", "skipped ebpf: kernel lacks it", "measured inside the qemu test VM"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

// svgDoc is the subset of the chart the test checks.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Panels  []struct {
		Title     string `xml:"data-title,attr"`
		Polylines []struct {
			Mode   string `xml:"data-mode,attr"`
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
	} `xml:"g"`
}

func TestSVGWellFormedOnePolylinePerMode(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSVG(&buf, sampleComparison(), "kproxy bench compare <test> & co"); err != nil {
		t.Fatal(err)
	}
	// Every token must parse: a browser refuses the whole file otherwise.
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG not well-formed: %v", err)
		}
	}
	var doc svgDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Panels) != 3 {
		t.Fatalf("%d panels, want 3 (full sync, change, connect)", len(doc.Panels))
	}
	for _, p := range doc.Panels {
		var modes []string
		for _, pl := range p.Polylines {
			modes = append(modes, pl.Mode)
		}
		if got := strings.Join(modes, ","); got != "userspace,iptables,nftables,iptables (vm),ipvs (vm)" {
			t.Errorf("panel %q polylines %s, want one per mode in column order", p.Title, got)
		}
		if n := len(strings.Fields(p.Polylines[1].Points)); n != 2 {
			t.Errorf("panel %q: iptables line has %d points, want 2 (1,000 and 10,000)", p.Title, n)
		}
	}
	// iptables' last-Service latency rises with N: its second point is higher (smaller y).
	pts := strings.Fields(doc.Panels[2].Polylines[1].Points)
	if y := func(p string) string { return strings.SplitN(p, ",", 2)[1] }; !(parseF(y(pts[1])) < parseF(y(pts[0]))) {
		t.Errorf("iptables connect line %v does not rise", pts)
	}
}

func parseF(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
