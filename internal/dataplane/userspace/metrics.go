package userspace

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-backend series of the userspace mode. Their names are an
// interface (issue #3): keep them.
type metrics struct {
	total  *prometheus.CounterVec
	active *prometheus.GaugeVec
}

// backendMetric is one {service,endpoint} pair's series. They are created on
// the endpoint's first connection, not when it appears: two series cost about
// 1.2 KB (labels, hashes, the registry's maps), which at 10,000 Services x 3
// endpoints was 35 MB, more than everything else the dataplane keeps, and at
// 100,000 x 5 would be 600 MB and a million series per scrape, most of them 0.
type backendMetric struct {
	// m is nil without a registry; svc and addr name the series.
	m    *metrics
	svc  *service
	addr netip.AddrPort
	// seen is the service's metricsGen of the last sync that found the endpoint.
	seen uint64

	// mu guards the series against a sync deleting them (gone) while a relay
	// creates them: a late first connection must not bring a gone endpoint's
	// series back.
	mu     sync.Mutex
	total  prometheus.Counter
	active prometheus.Gauge
	gone   bool
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
		svc.metrics[a] = &backendMetric{m: m, svc: svc, addr: a, seen: gen}
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
	bm := svc.metrics[a]
	delete(svc.metrics, a)
	if m == nil || bm == nil {
		return
	}
	bm.mu.Lock()
	bm.gone = true
	made := bm.total != nil
	bm.mu.Unlock()
	if made {
		m.total.DeleteLabelValues(svc.name.String(), a.String())
		m.active.DeleteLabelValues(svc.name.String(), a.String())
	}
}

// series returns the pair's series, creating them on first use unless the
// endpoint is gone; both are nil without a registry or once gone.
func (bm *backendMetric) series(create bool) (prometheus.Counter, prometheus.Gauge) {
	if bm == nil || bm.m == nil {
		return nil, nil
	}
	bm.mu.Lock()
	defer bm.mu.Unlock()
	if bm.total == nil && create && !bm.gone {
		svc, ep := bm.svc.name.String(), bm.addr.String()
		bm.total = bm.m.total.WithLabelValues(svc, ep)
		bm.active = bm.m.active.WithLabelValues(svc, ep)
	}
	return bm.total, bm.active
}

func (bm *backendMetric) opened() {
	if total, active := bm.series(true); total != nil {
		total.Inc()
		active.Inc()
	}
}

func (bm *backendMetric) closed() {
	if _, active := bm.series(false); active != nil {
		active.Dec()
	}
}
