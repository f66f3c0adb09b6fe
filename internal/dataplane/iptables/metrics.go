package iptables

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the iptables mode's own series for one family (label ip_family, as
// kube-proxy 1.33+); the daemon records the sync duration and no-local-endpoint
// series from SyncStats.
type metrics struct {
	total           *prometheus.GaugeVec // by table
	last            *prometheus.GaugeVec // by table
	restoreFailures prometheus.Counter
	partialFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, family string) *metrics {
	total := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_total",
		Help: "Number of iptables rules kproxy owns, by table.",
	}, []string{"ip_family", "table"})
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_last",
		Help: "Number of iptables rules written by the last sync, by table.",
	}, []string{"ip_family", "table"})
	restore := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_restore_failures_total",
		Help: "Number of failed iptables-restore calls.",
	}, []string{"ip_family"})
	partial := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_partial_restore_failures_total",
		Help: "Number of failed iptables-restore calls of partial syncs.",
	}, []string{"ip_family"})
	if reg != nil {
		// Both families' Proxiers (and a second dataplane in one process, for
		// bench) share one registry: the second one reuses the registered series.
		total = register(reg, total)
		last = register(reg, last)
		restore = register(reg, restore)
		partial = register(reg, partial)
	}
	fam := prometheus.Labels{"ip_family": family}
	return &metrics{
		total:           total.MustCurryWith(fam),
		last:            last.MustCurryWith(fam),
		restoreFailures: restore.With(fam),
		partialFailures: partial.With(fam),
	}
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}

func (m *metrics) record(total, written map[string]int) {
	for t, n := range total {
		m.total.WithLabelValues(t).Set(float64(n))
	}
	for t, n := range written {
		m.last.WithLabelValues(t).Set(float64(n))
	}
}
