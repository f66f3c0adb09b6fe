package userspace

import (
	"errors"
	"net/netip"
	"slices"
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
// series, gone ones lose theirs. svc.metrics is sorted by address; reachable
// is merged into it (sorted first unless it already is, as the Tracker gives
// it), and an unchanged list allocates nothing.
func (m *metrics) syncService(svc *service, reachable []netip.AddrPort) {
	want := reachable
	if !sortedAddrs(want) {
		want = slices.Compact(slices.SortedFunc(slices.Values(reachable), netip.AddrPort.Compare))
	}
	if slices.EqualFunc(svc.metrics, want, func(bm *backendMetric, a netip.AddrPort) bool { return bm.addr == a }) {
		return // the same endpoints
	}
	next := make([]*backendMetric, 0, len(want))
	old := svc.metrics
	i := 0
	for _, a := range want {
		for ; i < len(old) && old[i].addr.Compare(a) < 0; i++ {
			m.drop(svc, old[i])
		}
		if i < len(old) && old[i].addr == a {
			next = append(next, old[i])
			i++
			continue
		}
		next = append(next, &backendMetric{m: m, svc: svc, addr: a})
	}
	for ; i < len(old); i++ {
		m.drop(svc, old[i])
	}
	svc.metrics = next
}

// sortedAddrs reports whether as is strictly increasing.
func sortedAddrs(as []netip.AddrPort) bool {
	for i := 1; i < len(as); i++ {
		if as[i-1].Compare(as[i]) >= 0 {
			return false
		}
	}
	return true
}

// metric returns svc's series of endpoint a, or nil.
func (svc *service) metric(a netip.AddrPort) *backendMetric {
	i, ok := slices.BinarySearchFunc(svc.metrics, a, func(bm *backendMetric, a netip.AddrPort) int { return bm.addr.Compare(a) })
	if !ok {
		return nil
	}
	return svc.metrics[i]
}

func (m *metrics) forgetService(svc *service) {
	for _, bm := range svc.metrics {
		m.drop(svc, bm)
	}
	svc.metrics = nil
}

// drop deletes bm's series (the caller takes it out of svc.metrics).
func (m *metrics) drop(svc *service, bm *backendMetric) {
	if m == nil {
		return
	}
	bm.mu.Lock()
	bm.gone = true
	made := bm.total != nil
	bm.mu.Unlock()
	if made {
		m.total.DeleteLabelValues(svc.name.String(), bm.addr.String())
		m.active.DeleteLabelValues(svc.name.String(), bm.addr.String())
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
