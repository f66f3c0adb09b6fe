// Package metrics holds kproxy's daemon metrics under kube-proxy's names. They are
// registered on a registry passed in, never on a global one, so tests and several
// daemons in one process do not collide. Mode-specific metrics (iptables rule
// counts and such) are registered by the dataplanes themselves.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

const namespace = "kubeproxy"

// Metrics are the daemon's sync metrics.
type Metrics struct {
	SyncDuration          prometheus.Histogram
	SyncFullDuration      prometheus.Histogram
	SyncPartialDuration   prometheus.Histogram
	LastSync              prometheus.Gauge
	LastQueued            prometheus.Gauge
	ServiceChangesTotal   prometheus.Counter
	ServiceChangesPending prometheus.Gauge
	EndpointChangesTotal  prometheus.Counter
	EndpointChangesPend   prometheus.Gauge
	NetworkProgramming    prometheus.Histogram
	NoLocalEndpoints      *prometheus.GaugeVec
	HealthzTotal          *prometheus.CounterVec
	LivezTotal            *prometheus.CounterVec
}

// syncBuckets are kube-proxy's: 1ms doubling, 15 buckets (1ms to about 16s).
var syncBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// programmingBuckets are kube-proxy's network-programming buckets, 0.25s to 5min.
func programmingBuckets() []float64 {
	var b []float64
	b = append(b, prometheus.LinearBuckets(0.25, 0.25, 2)...)
	b = append(b, prometheus.LinearBuckets(1, 1, 59)...)
	b = append(b, prometheus.LinearBuckets(60, 5, 12)...)
	b = append(b, prometheus.LinearBuckets(120, 30, 7)...)
	return b
}

// New builds the metrics and registers them on reg; a nil reg registers nothing.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		SyncDuration:        histogram("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets),
		SyncFullDuration:    histogram("sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets),
		SyncPartialDuration: histogram("sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets),
		LastSync:            gauge("sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced"),
		LastQueued:          gauge("sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued"),
		ServiceChangesTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "sync_proxy_rules_service_changes_total", Help: "Cumulative proxy rules Service changes"}),
		ServiceChangesPending: gauge("sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes"),
		EndpointChangesTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "sync_proxy_rules_endpoint_changes_total", Help: "Cumulative proxy rules Endpoint changes"}),
		EndpointChangesPend: gauge("sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules Endpoint changes"),
		NetworkProgramming: histogram("network_programming_duration_seconds",
			"In Cluster Network Programming Latency in seconds", programmingBuckets()),
		NoLocalEndpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "sync_proxy_rules_no_local_endpoints_total",
			Help: "Number of services with a Local traffic policy and no endpoints"}, []string{"traffic_policy"}),
		HealthzTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "proxy_healthz_total", Help: "Cumulative proxy healthz HTTP status"}, []string{"code"}),
		LivezTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "proxy_livez_total", Help: "Cumulative proxy livez HTTP status"}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.SyncDuration, m.SyncFullDuration, m.SyncPartialDuration, m.LastSync,
			m.LastQueued, m.ServiceChangesTotal, m.ServiceChangesPending, m.EndpointChangesTotal,
			m.EndpointChangesPend, m.NetworkProgramming, m.NoLocalEndpoints, m.HealthzTotal, m.LivezTotal)
	}
	return m
}

func histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
}

// Queued records that a sync was asked for, with the changes still pending.
func (m *Metrics) Queued(now time.Time, pendingServices, pendingEndpoints int) {
	m.LastQueued.Set(float64(now.UnixNano()) / 1e9)
	m.ServiceChangesPending.Set(float64(pendingServices))
	m.EndpointChangesPend.Set(float64(pendingEndpoints))
}

// SyncResult is one dataplane sync as the metrics see it.
type SyncResult struct {
	Start   time.Time
	End     time.Time
	Stats   dataplane.SyncStats
	Changes state.ChangeSet
	Err     error
}

// Synced records one sync. The change counters count every event folded into the
// snapshot, whether or not the sync then succeeded, like kube-proxy's trackers.
func (m *Metrics) Synced(r SyncResult) {
	m.ServiceChangesTotal.Add(float64(r.Changes.ServiceEvents))
	m.EndpointChangesTotal.Add(float64(r.Changes.EndpointEvents))
	m.ServiceChangesPending.Set(0)
	m.EndpointChangesPend.Set(0)
	if r.Err != nil {
		return
	}
	d := r.End.Sub(r.Start).Seconds()
	m.SyncDuration.Observe(d)
	if r.Stats.Full {
		m.SyncFullDuration.Observe(d)
	} else {
		m.SyncPartialDuration.Observe(d)
	}
	m.LastSync.Set(float64(r.End.UnixNano()) / 1e9)
	for _, policy := range []string{"internal", "external"} {
		m.NoLocalEndpoints.WithLabelValues(policy).Set(float64(r.Stats.NoLocalEndpoints[policy]))
	}
	for _, t := range r.Changes.TriggerTimes {
		if lat := r.End.Sub(t); lat >= 0 {
			m.NetworkProgramming.Observe(lat.Seconds())
		}
	}
}
