package source

import (
	"bytes"
	"errors"
	"log/slog"
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
	if len(families) != 1 || families[0].GetName() != "kproxy_rejected_objects_total" || len(families[0].Metric) != 4 {
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
