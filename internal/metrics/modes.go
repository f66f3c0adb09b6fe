package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/config"
)

// ModeMetrics are kube-proxy 1.37's mode-specific metrics that no other kproxy
// package registers, under their upstream names and labels; the code that does
// the work increments them. A field is nil when the mode does not have the metric
// (as kube-proxy's RegisterMetrics(mode) leaves it out).
//
// Registered elsewhere, with the code that does the work: the conntrack
// reconciler's (internal/conntrack), the nftables localhost-NodePort listeners and
// listener failures (internal/dataplane/nftables), the iptables and nftables sync
// failure counters (their modes).
type ModeMetrics struct {
	// nftables mode.
	NFTablesCleanupFailures *prometheus.CounterVec // ip_family
	// NFTablesLocalhostNodePortRejectedPackets is read from named nft counters at
	// scrape time: set its Read.
	NFTablesLocalhostNodePortRejectedPackets *ReadCounter // ip_family, protocol

	// iptables mode, read from nfacct counters at scrape time: set their Read.
	IPTablesCTStateInvalidDroppedPackets      *ReadCounter
	IPTablesLocalhostNodePortsAcceptedPackets *ReadCounter
}

// RegisterModeMetrics registers the metrics above that kube-proxy 1.37 registers
// for mode on reg and returns them. The ebpf mode has the nftables mode's, as its
// north-south part is that mode (config.SettingsMode).
func RegisterModeMetrics(reg prometheus.Registerer, mode string) *ModeMetrics {
	m := &ModeMetrics{}
	var cs []prometheus.Collector
	switch config.SettingsMode(mode) {
	case config.ModeIPTables:
		m.IPTablesCTStateInvalidDroppedPackets = NewReadCounter("kubeproxy_iptables_ct_state_invalid_dropped_packets_total",
			"packets dropped by iptables to work around conntrack problems", nil)
		m.IPTablesLocalhostNodePortsAcceptedPackets = NewReadCounter("kubeproxy_iptables_localhost_nodeports_accepted_packets_total",
			"Number of packets accepted on nodeports of loopback interface", nil)
		cs = append(cs, m.IPTablesCTStateInvalidDroppedPackets, m.IPTablesLocalhostNodePortsAcceptedPackets)
	case config.ModeNFTables:
		m.NFTablesCleanupFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "sync_proxy_rules_nftables_cleanup_failures_total", Help: "Cumulative proxy nftables cleanup failures"}, familyLabel)
		m.NFTablesLocalhostNodePortRejectedPackets = NewReadCounter("kubeproxy_nftables_localhost_nodeport_rejected_packets_total",
			"Number of packets rejected on localhost NodePorts. UDP and SCTP are always rejected; TCP is rejected when "+
				"the localhost NodePort proxy is not running", []string{LabelIPFamily, "protocol"})
		cs = append(cs, m.NFTablesCleanupFailures, m.NFTablesLocalhostNodePortRejectedPackets)
	}
	if reg != nil && len(cs) > 0 {
		reg.MustRegister(cs...)
	}
	return m
}

// Sample is one value of a ReadCounter, with its label values in order.
type Sample struct {
	Labels []string
	Value  float64
}

// ReadCounter is a counter kept by the kernel (an nfacct or nft named counter),
// read at scrape time. Until Read is set it reports nothing.
type ReadCounter struct {
	desc *prometheus.Desc
	// Read returns the current values; an error leaves them out of the scrape.
	Read func() ([]Sample, error)
}

// NewReadCounter describes a kernel-kept counter.
func NewReadCounter(name, help string, labels []string) *ReadCounter {
	return &ReadCounter{desc: prometheus.NewDesc(name, help, labels, nil)}
}

// Describe implements prometheus.Collector.
func (c *ReadCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *ReadCounter) Collect(ch chan<- prometheus.Metric) {
	if c.Read == nil {
		return
	}
	samples, err := c.Read()
	if err != nil {
		return
	}
	for _, s := range samples {
		if m, err := prometheus.NewConstMetric(c.desc, prometheus.CounterValue, s.Value, s.Labels...); err == nil {
			ch <- m
		}
	}
}
