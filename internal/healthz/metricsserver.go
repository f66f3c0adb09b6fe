package healthz

import (
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsOptions configure the metrics server's handler.
type MetricsOptions struct {
	Gatherer prometheus.Gatherer
	// Mode is the proxy mode /proxyMode reports.
	Mode string
	// Profiling serves /debug/pprof.
	Profiling bool
	// Configz, if set, is the effective configuration /configz serves, under the
	// key "kubeproxy.config.k8s.io" as kube-proxy's configz does.
	Configz any
	// Flagz, if set, returns the command line's flags as name -> value (/flagz).
	Flagz func() map[string]string
	// Statusz, if set, is served at /statusz.
	Statusz *StatuszInfo
	// Extra are kproxy's own paths, such as /list.
	Extra map[string]http.Handler
	// SetVerbosity, if set, serves PUT /debug/flags/v with profiling, as kube-proxy.
	SetVerbosity func(v int)
}

// MetricsHandler serves kube-proxy 1.37's metrics address: /metrics,
// /metrics/slis, /healthz (the generic "ok" with its ping check), /proxyMode,
// /configz, /flagz, /statusz and, with profiling, /debug/pprof.
func MetricsHandler(o MetricsOptions) http.Handler {
	mux := http.NewServeMux()
	var paths []string
	handle := func(p string, h http.Handler) {
		mux.Handle(p, h)
		paths = append(paths, p)
	}
	handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	slis := newSLIs()
	handle("/metrics/slis", slis.handler())
	handle("/healthz", slis.healthzHandler())
	handle("/healthz/ping", slis.healthzHandler())
	handle("/proxyMode", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fmt.Fprint(w, o.Mode)
	}))
	if o.Configz != nil {
		handle("/configz", configzHandler(o.Configz))
	}
	if o.Flagz != nil {
		handle("/flagz", flagzHandler(o.Flagz))
	}
	for p, h := range o.Extra {
		handle(p, h)
	}
	if o.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		paths = append(paths, "/debug/pprof")
		if o.SetVerbosity != nil {
			mux.Handle("/debug/flags/v", verbosityHandler(o.SetVerbosity))
			paths = append(paths, "/debug/flags")
		}
	}
	if o.Statusz != nil {
		paths = append(paths, "/statusz")
		sort.Strings(paths)
		mux.Handle("/statusz", statuszHandler(*o.Statusz, paths))
	}
	return mux
}

// verbosityHandler is kube-proxy's PUT /debug/flags/v: the body is the new -v.
func verbosityHandler(set func(int)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			http.Error(w, "only PUT is allowed", http.StatusMethodNotAllowed)
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 64))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || v < 0 || v > 10 {
			http.Error(w, fmt.Sprintf("invalid verbosity %q: want an integer in [0, 10]", truncateBody(b)), http.StatusBadRequest)
			return
		}
		set(v)
		fmt.Fprintf(w, "successfully set klog.logging.verbosity to %d", v)
	})
}

func truncateBody(b []byte) string {
	if len(b) > 16 {
		return string(b[:16]) + "..."
	}
	return string(b)
}
