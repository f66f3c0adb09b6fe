package healthz

import (
	"encoding/json"
	"errors"
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
	started := time.Unix(1_700_000_000, 0)
	h := MetricsHandler(MetricsOptions{Gatherer: reg, Mode: "userspace",
		Configz: map[string]string{"kind": "KubeProxyConfiguration", "mode": "userspace"},
		Flagz:   func() map[string]string { return map[string]string{"v": "2", "proxy-mode": "userspace"} },
		Statusz: &StatuszInfo{Started: started, Version: "v9.9.9", Now: func() time.Time { return started.Add(3723 * time.Second) }},
		Extra:   map[string]http.Handler{"/list": http.NotFoundHandler()}})
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
	// kube-proxy's metrics server has the generic healthz: "ok" with a ping check.
	if code, b := body("/healthz"); code != 200 || b != "ok" {
		t.Errorf("/healthz on metrics server = %d %q", code, b)
	}
	if code, b := body("/healthz?verbose"); code != 200 || !strings.Contains(b, "[+]ping ok") {
		t.Errorf("/healthz?verbose = %d %q", code, b)
	}
	if code, b := body("/metrics/slis"); code != 200 ||
		!strings.Contains(b, `kubernetes_healthcheck{name="ping",type="healthz"} 1`) ||
		!strings.Contains(b, `kubernetes_healthchecks_total{name="ping",status="success",type="healthz"} 2`) {
		t.Errorf("/metrics/slis = %d %q", code, b)
	}
	code, b := body("/configz")
	var cz map[string]map[string]string
	if err := json.Unmarshal([]byte(b), &cz); code != 200 || err != nil || cz["kubeproxy.config.k8s.io"]["mode"] != "userspace" {
		t.Errorf("/configz = %d %q (%v)", code, b, err)
	}
	if code, b := body("/flagz"); code != 200 || !strings.Contains(b, "kproxy flags\nWarning:") ||
		!strings.HasSuffix(b, "\n\nproxy-mode=userspace\nv=2\n") {
		t.Errorf("/flagz = %d %q", code, b)
	}
	code, b = body("/statusz")
	for _, want := range []string{"Started: " + started.UTC().Format(time.UnixDate), "Up: 1 hr 02 min 03 sec",
		"Binary version: v9.9.9", "Paths: /configz /flagz /healthz /healthz/ping /list /metrics /metrics/slis /proxyMode /statusz"} {
		if code != 200 || !strings.Contains(b, want+"\n") {
			t.Errorf("/statusz lacks %q: %d %q", want, code, b)
		}
	}
	if code, _ := body("/debug/pprof/"); code != 404 {
		t.Errorf("pprof served without profiling: %d", code)
	}
}

// The body of /healthz and /livez is kube-proxy 1.37's, with a per-family status
// once the proxy has synced, and kproxy's source status.
func TestHealthBodyLayout(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	s := New(Options{Timeout: time.Minute, Now: clock.Now, Families: []string{"IPv4", "IPv6"}})
	_, body := get(t, s.Handler(), "/healthz")
	if _, ok := body["status"]; ok {
		t.Errorf("status before the first sync: %v", body)
	}
	s.Updated()
	clock.Step(time.Second)
	s.SourceSynced()
	s.SourceError(errors.New("dial tcp 10.0.0.1:6443: connect: connection refused"))
	code, body := get(t, s.Handler(), "/healthz")
	st, _ := body["status"].(map[string]any)
	v4, _ := st["IPv4"].(map[string]any)
	if code != 200 || len(st) != 2 || v4["healthy"] != true || v4["lastUpdated"] != "2023-11-14T22:13:20Z" {
		t.Errorf("status = %v", body["status"])
	}
	// As kube-proxy: a healthy answer's lastUpdated is the current time.
	if body["lastUpdated"] != body["currentTime"] {
		t.Errorf("lastUpdated %v, currentTime %v", body["lastUpdated"], body["currentTime"])
	}
	src, _ := body["source"].(map[string]any)
	if src["synced"] != true || src["watching"] != false || !strings.Contains(src["lastError"].(string), "connection refused") ||
		src["lastErrorTime"] == nil {
		t.Errorf("source = %v", body["source"])
	}
	s.SourceRestored()
	if _, body := get(t, s.Handler(), "/healthz"); body["source"].(map[string]any)["watching"] != true {
		t.Errorf("after restore: source = %v", body["source"])
	}
	s.QueuedUpdate()
	clock.Step(2 * time.Minute)
	code, body = get(t, s.Handler(), "/livez")
	st, _ = body["status"].(map[string]any)
	v6, _ := st["IPv6"].(map[string]any)
	if code != 503 || v6["healthy"] != false || body["lastUpdated"] == body["currentTime"] {
		t.Errorf("unhealthy body = %d %v", code, body)
	}
}

func TestDebugFlagsVWithProfiling(t *testing.T) {
	var got []int
	h := MetricsHandler(MetricsOptions{Gatherer: prometheus.NewRegistry(), Profiling: true,
		SetVerbosity: func(v int) { got = append(got, v) }})
	put := func(body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/debug/flags/v", strings.NewReader(body)))
		return rec.Code
	}
	if code := put("4\n"); code != 200 || len(got) != 1 || got[0] != 4 {
		t.Errorf("PUT 4: %d %v", code, got)
	}
	if code := put("lots"); code != 400 || len(got) != 1 {
		t.Errorf("PUT lots: %d %v", code, got)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/flags/v", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	plain := MetricsHandler(MetricsOptions{Gatherer: prometheus.NewRegistry(), SetVerbosity: func(int) {}})
	rec = httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/debug/flags/v", strings.NewReader("4")))
	if rec.Code != 404 {
		t.Errorf("served without profiling: %d", rec.Code)
	}
}
