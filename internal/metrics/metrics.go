// Package metrics holds kproxy's daemon metrics under kube-proxy 1.37's names and
// labels. They are registered on a registry passed in, never on a global one, so
// tests and several daemons in one process do not collide. The sync metrics carry
// kube-proxy's ip_family label ("IPv4", "IPv6"): kproxy syncs every family in one
// pass, so each sync is recorded once per family the node serves. Mode-specific
// metrics are registered by RegisterModeMetrics (modes.go) or the dataplanes.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

const namespace = "kubeproxy"

// LabelIPFamily is kube-proxy's per-family label.
const LabelIPFamily = "ip_family"

// IP family label values.
const (
	IPv4 = "IPv4"
	IPv6 = "IPv6"
)

// Metrics are the daemon's sync metrics.
type Metrics struct {
	families []string

	SyncDuration          *prometheus.HistogramVec
	SyncFullDuration      *prometheus.HistogramVec
	SyncPartialDuration   *prometheus.HistogramVec
	LastSync              *prometheus.GaugeVec
	LastQueued            *prometheus.GaugeVec
	ServiceChangesTotal   prometheus.Counter
	ServiceChangesPending prometheus.Gauge
	EndpointChangesTotal  prometheus.Counter
	EndpointChangesPend   prometheus.Gauge
	NetworkProgramming    *prometheus.HistogramVec
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

var familyLabel = []string{LabelIPFamily}

// New builds the metrics for an IPv4 node and registers them on reg; a nil reg
// registers nothing.
func New(reg prometheus.Registerer) *Metrics { return NewForFamilies(reg, nil) }

// NewForFamilies builds the metrics for a node serving families (nil means IPv4).
func NewForFamilies(reg prometheus.Registerer, families []string) *Metrics {
	if len(families) == 0 {
		families = []string{IPv4}
	}
	m := &Metrics{
		families:            families,
		SyncDuration:        histogram("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets),
		SyncFullDuration:    histogram("sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets),
		SyncPartialDuration: histogram("sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets),
		LastSync:            gauge("sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced"),
		LastQueued:          gauge("sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued"),
		ServiceChangesTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "sync_proxy_rules_service_changes_total", Help: "Cumulative proxy rules Service changes"}),
		ServiceChangesPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
			Name: "sync_proxy_rules_service_changes_pending", Help: "Pending proxy rules Service changes"}),
		EndpointChangesTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "sync_proxy_rules_endpoint_changes_total", Help: "Cumulative proxy rules Endpoint changes"}),
		EndpointChangesPend: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace,
			Name: "sync_proxy_rules_endpoint_changes_pending", Help: "Pending proxy rules Endpoint changes"}),
		NetworkProgramming: histogram("network_programming_duration_seconds",
			"In Cluster Network Programming Latency in seconds", programmingBuckets()),
		NoLocalEndpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "sync_proxy_rules_no_local_endpoints_total",
			Help: "Number of services with a Local traffic policy and no endpoints"}, []string{"traffic_policy", LabelIPFamily}),
		HealthzTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "proxy_healthz_total", Help: "Cumulative proxy healthz HTTP status"}, []string{"code"}),
		LivezTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "proxy_livez_total", Help: "Cumulative proxy livez HTTP status"}, []string{"code"}),
	}
	// The histograms exist from the start, with zero counts, for each family,
	// so that a dashboard sees them before the first observation.
	for _, f := range families {
		for _, h := range []*prometheus.HistogramVec{m.SyncDuration, m.SyncFullDuration, m.SyncPartialDuration, m.NetworkProgramming} {
			h.WithLabelValues(f)
		}
	}
	if reg != nil {
		reg.MustRegister(m.SyncDuration, m.SyncFullDuration, m.SyncPartialDuration, m.LastSync,
			m.LastQueued, m.ServiceChangesTotal, m.ServiceChangesPending, m.EndpointChangesTotal,
			m.EndpointChangesPend, m.NetworkProgramming, m.NoLocalEndpoints, m.HealthzTotal, m.LivezTotal)
	}
	return m
}

func histogram(name, help string, buckets []float64) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, familyLabel)
}

func gauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, familyLabel)
}

// Queued records that a sync was asked for, with the changes still pending.
func (m *Metrics) Queued(now time.Time, pendingServices, pendingEndpoints int) {
	for _, f := range m.families {
		m.LastQueued.WithLabelValues(f).Set(float64(now.UnixNano()) / 1e9)
	}
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
	for _, f := range m.families {
		m.syncedFamily(f, r)
	}
}

func (m *Metrics) syncedFamily(family string, r SyncResult) {
	d := r.End.Sub(r.Start).Seconds()
	m.SyncDuration.WithLabelValues(family).Observe(d)
	if r.Stats.Full {
		m.SyncFullDuration.WithLabelValues(family).Observe(d)
	} else {
		m.SyncPartialDuration.WithLabelValues(family).Observe(d)
	}
	m.LastSync.WithLabelValues(family).Set(float64(r.End.UnixNano()) / 1e9)
	for _, policy := range []string{"internal", "external"} {
		m.NoLocalEndpoints.WithLabelValues(policy, family).Set(float64(r.Stats.NoLocalEndpoints[policy]))
	}
	for _, t := range r.Changes.TriggerTimes {
		if lat := r.End.Sub(t); lat >= 0 {
			m.NetworkProgramming.WithLabelValues(family).Observe(lat.Seconds())
		}
	}
}
