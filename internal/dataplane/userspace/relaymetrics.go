package userspace

import (
	"github.com/prometheus/client_golang/prometheus"
)

// relayMetrics are the relay's own series: refusals by the connection caps, idle
// timeouts and open connections. Every label value comes from a fixed set.
type relayMetrics struct {
	refused *prometheus.CounterVec
	idle    prometheus.Counter
}

func newRelayMetrics(reg prometheus.Registerer, open func() float64) (*relayMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &relayMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kproxy_userspace_refused_connections_total",
			Help: "TCP connections reset and UDP datagrams dropped by the userspace relay's connection caps, by reason (max_conns, max_conns_per_client) and protocol (tcp, udp).",
		}, []string{"reason", "protocol"}),
		idle: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kproxy_userspace_idle_timeouts_total",
			Help: "Relayed TCP connections the userspace relay closed after the idle timeout.",
		}),
	}
	var err error
	if m.refused, err = register(reg, m.refused); err != nil {
		return nil, err
	}
	if m.idle, err = register(reg, m.idle); err != nil {
		return nil, err
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kproxy_userspace_open_connections",
		Help: "TCP connections and UDP flows the userspace relay holds open now (what the caps count).",
	}, open)
	if err := reg.Register(gauge); err != nil {
		// A second dataplane on the same registry (tests) keeps the first gauge.
		if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
			return nil, err
		}
	}
	return m, nil
}

func (m *relayMetrics) refusedConn(r refusal, protocol string) {
	if m != nil {
		m.refused.WithLabelValues(r.String(), protocol).Inc()
	}
}

func (m *relayMetrics) idleClosed() {
	if m != nil {
		m.idle.Inc()
	}
}
