package userspace

import (
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-backend series of the userspace mode. Their names are an
// interface (issue #3): keep them.
type metrics struct {
	total  *prometheus.CounterVec
	active *prometheus.GaugeVec
}

// backendMetric holds one {service,endpoint} pair's series, resolved once per sync
// so that a new connection does not look labels up. Both are nil without a registry.
type backendMetric struct {
	total  prometheus.Counter
	active prometheus.Gauge
	// seen is the service's metricsGen of the last sync that found the endpoint.
	seen uint64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_backend_connections_total",
			Help: "Connections (TCP) and flows (UDP) the userspace dataplane relayed to each endpoint.",
		}, []string{"service", "endpoint"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kproxy_backend_active_connections",
			Help: "Connections and UDP flows the userspace dataplane is relaying to each endpoint now.",
		}, []string{"service", "endpoint"}),
	}
	var err error
	if m.total, err = register(reg, m.total); err != nil {
		return nil, err
	}
	if m.active, err = register(reg, m.active); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c, or reuses the collector already registered under its name (a
// second dataplane on the same registry, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// syncService makes svc's series match the endpoints it may reach: new endpoints get
// series, gone ones lose theirs. Entries are stamped with the sync's generation
// and the unstamped ones swept, so no set of the endpoints is built per sync.
func (m *metrics) syncService(svc *service, reachable []netip.AddrPort) {
	svc.metricsGen++
	gen := svc.metricsGen
	fresh := 0 // distinct endpoints of reachable
	for _, a := range reachable {
		if bm := svc.metrics[a]; bm != nil {
			if bm.seen != gen { // not a duplicate in reachable
				bm.seen = gen
				fresh++
			}
			continue
		}
		bm := &backendMetric{seen: gen}
		if m != nil {
			bm.total = m.total.WithLabelValues(svc.name.String(), a.String())
			bm.active = m.active.WithLabelValues(svc.name.String(), a.String())
		}
		svc.metrics[a] = bm
		fresh++
	}
	if fresh == len(svc.metrics) {
		return // every entry was seen: nothing to sweep
	}
	for a, bm := range svc.metrics {
		if bm.seen != gen {
			m.delete(svc, a)
		}
	}
}

func (m *metrics) forgetService(svc *service) {
	for a := range svc.metrics {
		m.delete(svc, a)
	}
}

func (m *metrics) delete(svc *service, a netip.AddrPort) {
	delete(svc.metrics, a)
	if m == nil {
		return
	}
	m.total.DeleteLabelValues(svc.name.String(), a.String())
	m.active.DeleteLabelValues(svc.name.String(), a.String())
}

func (bm *backendMetric) opened() {
	if bm != nil && bm.total != nil {
		bm.total.Inc()
		bm.active.Inc()
	}
}

func (bm *backendMetric) closed() {
	if bm != nil && bm.active != nil {
		bm.active.Dec()
	}
}
