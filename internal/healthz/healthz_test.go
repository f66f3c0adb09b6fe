package healthz

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func get(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", path, rec.Body.String(), err)
	}
	return rec.Code, body
}

func TestUnhealthyWhenAQueuedUpdateIsOlderThanTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := New(Options{Timeout: 60 * time.Second, Now: clock.Now})
	h := s.Handler()

	if code, body := get(t, h, "/healthz"); code != 200 || body["healthy"] != true {
		t.Fatalf("fresh server: %d %v", code, body)
	}
	s.QueuedUpdate()
	clock.Step(50 * time.Second)
	s.QueuedUpdate() // a later change must not restart the clock
	clock.Step(11 * time.Second)
	code, body := get(t, h, "/healthz")
	if code != 503 || body["healthy"] != false {
		t.Fatalf("update queued 61s ago: %d %v, want 503", code, body)
	}
	for _, k := range []string{"lastUpdated", "currentTime", "nodeEligible", "healthy"} {
		if _, ok := body[k]; !ok {
			t.Errorf("body lacks %q: %v", k, body)
		}
	}
	if code, _ := get(t, h, "/livez"); code != 503 {
		t.Errorf("/livez = %d, want 503", code)
	}
	s.Updated()
	code, body = get(t, h, "/healthz")
	if code != 200 {
		t.Fatalf("after a sync: %d", code)
	}
	if body["lastUpdated"] != clock.Now().UTC().Format(time.RFC3339) {
		t.Errorf("lastUpdated = %v, want %v", body["lastUpdated"], clock.Now().UTC())
	}
}

func TestNodeEligibilityAffectsHealthzOnly(t *testing.T) {
	s := New(Options{Timeout: time.Minute})
	s.SetNodeEligible(false)
	if code, body := get(t, s.Handler(), "/healthz"); code != 503 || body["nodeEligible"] != false {
		t.Errorf("/healthz with ineligible node = %d %v", code, body)
	}
	code, body := get(t, s.Handler(), "/livez")
	if code != 200 {
		t.Errorf("/livez with ineligible node = %d", code)
	}
	if _, ok := body["nodeEligible"]; ok {
		t.Errorf("/livez reports nodeEligible: %v", body)
	}
}

func TestResponsesAreCounted(t *testing.T) {
	hz := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "h"}, []string{"code"})
	lz := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "l"}, []string{"code"})
	s := New(Options{Timeout: time.Minute, HealthzTotal: hz, LivezTotal: lz})
	get(t, s.Handler(), "/healthz")
	get(t, s.Handler(), "/healthz")
	get(t, s.Handler(), "/livez")
	if v := testutil.ToFloat64(hz.WithLabelValues("200")); v != 2 {
		t.Errorf("healthz 200 count = %v", v)
	}
	if v := testutil.ToFloat64(lz.WithLabelValues("200")); v != 1 {
		t.Errorf("livez 200 count = %v", v)
	}
}

func TestMetricsHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubeproxy_test_gauge", Help: "x"})
	g.Set(7)
	reg.MustRegister(g)
	h := MetricsHandler(MetricsOptions{Gatherer: reg, Mode: "userspace", Health: New(Options{Timeout: time.Minute})})
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := body("/proxyMode"); code != 200 || b != "userspace" {
		t.Errorf("/proxyMode = %d %q", code, b)
	}
	if code, b := body("/metrics"); code != 200 || !strings.Contains(b, "kubeproxy_test_gauge 7") {
		t.Errorf("/metrics = %d %q", code, b)
	}
	if code, _ := body("/healthz"); code != 200 {
		t.Errorf("/healthz on metrics server = %d", code)
	}
	if code, _ := body("/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without profiling: %d", code)
	}
}
