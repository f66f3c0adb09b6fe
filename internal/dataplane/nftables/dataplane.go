// Package nftables is kproxy's nftables mode: one table per IP family ("ip kproxy",
// "ip6 kproxy") with O(1) verdict-map dispatch, endpoint choice in the kernel per
// Service (random, rr, wrr, sh, mh), and updates sent as netlink batches holding only
// what changed. README.md documents the table layout for other firewall users.
//
// Rendering (render.go, schedule.go) is pure and golden-tested; the kernel is reached
// only through netlink_linux.go.
package nftables

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ModeName is the proxy mode this package registers.
const ModeName = "nftables"

type metrics struct {
	syncFailures prometheus.Counter
	checks       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{syncFailures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
		Help: "Cumulative nftables sync failures",
	}), checks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kproxy_nftables_table_checks_total",
		Help: "Periodic self-checks of kproxy's nftables tables, by result: unchanged (ruleset generation unchanged, nothing read), other-tables (generation moved, but the nf_tables change notifications show only other tables changed, nothing read), verified (read back and intact), damaged (changed outside kproxy, repaired by a full sync)",
	}, []string{"result"})}
	for _, r := range []string{"unchanged", "other-tables", "verified", "damaged"} {
		m.checks.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.syncFailures, m.checks)
	}
	return m
}
