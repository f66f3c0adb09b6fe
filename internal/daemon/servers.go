package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/healthz"
)

// startServers opens the healthz, metrics and admin servers. A port that cannot be
// bound is logged and skipped unless bindAddressHardFail is set, as in kube-proxy.
func (d *daemon) startServers() (stop func(), err error) {
	c := d.o.Config
	servers := []struct {
		name, addr string
		h          http.Handler
	}{
		{"healthz", c.HealthzBindAddress, d.health.Handler()},
		{"metrics", c.MetricsBindAddress, d.metricsHandler()},
		{"admin", d.o.AdminBindAddress, d.adminHandler()},
	}
	var running []*http.Server
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range running {
			_ = s.Shutdown(ctx)
		}
	}
	for _, s := range servers {
		if s.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			err = fmt.Errorf("%s server on %s: %w", s.name, s.addr, err)
			if c.BindAddressHardFail {
				stop()
				return nil, err
			}
			d.log.Error("cannot serve", "err", err)
			continue
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		running = append(running, srv)
		go func(name string) {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("server stopped", "server", name, "err", err)
			}
		}(s.name)
		d.log.Info("serving", "server", s.name, "address", ln.Addr().String())
		if d.o.Serving != nil {
			d.o.Serving(s.name, ln.Addr().String())
		}
	}
	return stop, nil
}

// metricsHandler serves kube-proxy 1.37's metrics address, plus /list.
func (d *daemon) metricsHandler() http.Handler {
	c := d.o.Config
	o := healthz.MetricsOptions{Gatherer: d.o.Registry, Mode: d.mode, Profiling: c.EnableProfiling,
		Configz: c, Extra: map[string]http.Handler{"/list": d.adminHandler()}, SetVerbosity: d.o.SetVerbosity}
	if config.FeatureEnabled(c, config.GateComponentFlagz) {
		o.Flagz = d.o.Flagz
	}
	if config.FeatureEnabled(c, config.GateComponentStatusz) {
		o.Statusz = &healthz.StatuszInfo{Started: d.started, Version: d.o.Version}
	}
	return healthz.MetricsHandler(o)
}

// adminHandler serves GET /list for `kproxy list`: the dataplane's virtual-server
// table as JSON, or 501 when the mode cannot list itself.
func (d *daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /list", func(w http.ResponseWriter, r *http.Request) {
		l, ok := dataplane.As[dataplane.Lister](d.dp)
		if !ok {
			http.Error(w, fmt.Sprintf("proxy mode %s cannot list its virtual services", d.mode), http.StatusNotImplemented)
			return
		}
		vss, err := l.List(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if vss == nil {
			vss = []dataplane.VirtualService{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(vss)
	})
	return mux
}
