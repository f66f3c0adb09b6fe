package healthz

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// slis are component-base's health-check SLI metrics, served on /metrics/slis:
// kubernetes_healthcheck{name,type} (1 when the last check passed) and
// kubernetes_healthchecks_total{name,status,type}. The metrics server's /healthz
// has one check, "ping", as kube-proxy's.
type slis struct {
	reg   *prometheus.Registry
	last  *prometheus.GaugeVec
	total *prometheus.CounterVec
}

func newSLIs() *slis {
	s := &slis{
		reg: prometheus.NewRegistry(),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubernetes_healthcheck",
			Help: "[STABLE] This metric records the result of a single healthcheck."}, []string{"name", "type"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubernetes_healthchecks_total",
			Help: "[STABLE] This metric records the results of all healthcheck."}, []string{"name", "status", "type"}),
	}
	s.reg.MustRegister(s.last, s.total)
	return s
}

func (s *slis) handler() http.Handler { return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}) }

// healthzHandler is the generic /healthz: "ok", or with ?verbose each check.
func (s *slis) healthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.last.WithLabelValues("ping", "healthz").Set(1)
		s.total.WithLabelValues("ping", "success", "healthz").Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			_, _ = w.Write([]byte("[+]ping ok\nhealthz check passed\n"))
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
}
