package healthz

import (
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsOptions configure the metrics server's handler.
type MetricsOptions struct {
	Gatherer prometheus.Gatherer
	// Mode is the proxy mode /proxyMode reports.
	Mode string
	// Health, if set, also serves /healthz here, as kube-proxy does.
	Health *Server
	// Profiling serves /debug/pprof.
	Profiling bool
}

// MetricsHandler serves /metrics, /proxyMode and /healthz on the metrics address.
func MetricsHandler(o MetricsOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fmt.Fprint(w, o.Mode)
	})
	if o.Health != nil {
		mux.Handle("/healthz", o.Health.HealthzHandler())
	}
	if o.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
