package source

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRejectsLogsAndCounts(t *testing.T) {
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	r := NewRejects(reg, slog.New(slog.NewTextHandler(&buf, nil)))

	r.Reject("Service default/web", errors.New("metadata.annotations[kproxy.dev/scheduler]: unknown scheduler"))
	r.RejectFile("services.yaml", "EndpointSlice default/web-1", errors.New("endpoints[0].addresses[0]: invalid IP address"))
	r.RejectFile("broken.yaml", "", errors.New("does not parse"))

	for kind, want := range map[string]float64{"Service": 1, "EndpointSlice": 1, KindFile: 1, "Node": 0} {
		if got := r.Count(kind); got != want {
			t.Errorf("Count(%s) = %v, want %v", kind, got, want)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per rejection, got:\n%s", buf.String())
	}
	for i, want := range []string{
		`msg="rejected: Service default/web: metadata.annotations[kproxy.dev/scheduler]: unknown scheduler"`,
		`msg="rejected: services.yaml: EndpointSlice default/web-1: endpoints[0].addresses[0]: invalid IP address" kind=EndpointSlice file=services.yaml object="EndpointSlice default/web-1"`,
		`msg="rejected: broken.yaml: does not parse" kind=File file=broken.yaml`,
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].GetName() != "kproxy_rejected_objects_total" || len(families[0].Metric) != len(Kinds) {
		t.Fatalf("registered metrics: %v", families)
	}
}

func TestRejectsNilSafe(t *testing.T) {
	var r *Rejects
	r.Reject("Service a/b", errors.New("x"))
	if r.Count("Service") != 0 {
		t.Fatal("nil Rejects counted")
	}
	// A nil registerer skips registration but still counts.
	r = NewRejects(nil, slog.New(slog.DiscardHandler))
	r.Reject("Node n", errors.New("x"))
	if r.Count("Node") != 1 {
		t.Fatal("not counted without a registerer")
	}
}

// TestRejectsLabelsAreAFixedSet: kinds taken from input (garbage, misspelt, huge,
// empty) never create a series of their own.
func TestRejectsLabelsAreAFixedSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewRejects(reg, slog.New(slog.DiscardHandler))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		r.RejectFile("f.yaml", string(b)+" ns/name", errors.New("x"))
		r.Reject(fmt.Sprintf("Kind%d ns/name", i), errors.New("x"))
	}
	r.Reject("Servce default/web", errors.New("x"))
	r.Reject("", errors.New("x"))
	r.Reject("List in document 1", errors.New("x"))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range families[0].Metric {
		got[m.GetLabel()[0].GetValue()] = true
	}
	if len(got) != len(Kinds) {
		t.Fatalf("series %v, want exactly %v", got, Kinds)
	}
	for _, k := range Kinds {
		if !got[k] {
			t.Errorf("series %s missing", k)
		}
	}
	if n := r.Count(KindOther); n < 4000 {
		t.Errorf("Other counted %v, want every garbage kind (>= 4000)", n)
	}
	if r.Count("List") != 1 {
		t.Errorf("List counted %v, want 1", r.Count("List"))
	}
}

// TestRejectsClipsInput: a 32 MiB name (in the object and quoted again in the
// error) makes a log line of a few hundred bytes that still says what was wrong.
func TestRejectsClipsInput(t *testing.T) {
	var buf bytes.Buffer
	r := NewRejects(nil, slog.New(slog.NewTextHandler(&buf, nil)))
	name := strings.Repeat("a", 32<<20)
	r.RejectFile("big.yaml", "Service default/"+name, fmt.Errorf("metadata.name: %q: must be no more than 63 characters", name))
	line := buf.String()
	if max := 2*MaxLoggedBytes + MaxLoggedErrorBytes + 200; len(line) > max {
		t.Fatalf("log line is %d bytes, want at most %d", len(line), max)
	}
	for _, want := range []string{"big.yaml", "Service default/aaaa", "(33554448 bytes)", "metadata.name", "(33554485 bytes)", "kind=Service"} {
		if !strings.Contains(line, want) {
			t.Errorf("want %q in %s", want, line)
		}
	}
}

func TestClip(t *testing.T) {
	if got := Clip("short"); got != "short" {
		t.Fatalf("Clip(short) = %q", got)
	}
	exact := strings.Repeat("x", MaxLoggedBytes)
	if Clip(exact) != exact {
		t.Fatal("a value of exactly MaxLoggedBytes was clipped")
	}
	// A multi-byte rune across the cut is not split.
	s := strings.Repeat("x", MaxLoggedBytes-1) + "é" + "tail"
	got := Clip(s)
	if want := strings.Repeat("x", MaxLoggedBytes-1) + "…(" + fmt.Sprint(len(s)) + " bytes)"; got != want {
		t.Fatalf("Clip = %q, want %q", got, want)
	}
	if b := ClipBytes([]byte(s)); b != got {
		t.Fatalf("ClipBytes = %q, want %q", b, got)
	}
}
