package iptables

import "github.com/prometheus/client_golang/prometheus"

// metrics are the iptables mode's own series; the daemon records the sync duration
// and no-local-endpoint series from SyncStats.
type metrics struct {
	total           *prometheus.GaugeVec
	last            *prometheus.GaugeVec
	restoreFailures prometheus.Counter
	partialFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_total",
			Help: "Number of iptables rules kproxy owns, by table.",
		}, []string{"table"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_last",
			Help: "Number of iptables rules written by the last sync, by table.",
		}, []string{"table"}),
		restoreFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_restore_failures_total",
			Help: "Number of failed iptables-restore calls.",
		}),
		partialFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubeproxy", Subsystem: "sync_proxy_rules", Name: "iptables_partial_restore_failures_total",
			Help: "Number of failed iptables-restore calls of partial syncs.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.total, m.last, m.restoreFailures, m.partialFailures} {
			if err := reg.Register(c); err != nil {
				// A second dataplane in one process (bench) must not panic; it
				// simply reports through the first one's series.
				continue
			}
		}
	}
	return m
}

func (m *metrics) record(total, written map[string]int) {
	for t, n := range total {
		m.total.WithLabelValues(t).Set(float64(n))
	}
	for t, n := range written {
		m.last.WithLabelValues(t).Set(float64(n))
	}
}
