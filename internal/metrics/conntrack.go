package metrics

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// ConntrackCollector reports the conntrack table's usage, read at scrape time. A
// value that cannot be read (no nf_conntrack module, a sandbox) is left out rather
// than reported as 0, which would look like an empty table.
type ConntrackCollector struct {
	// Dir holds nf_conntrack_count and nf_conntrack_max; "" means /proc/sys/net/netfilter.
	Dir     string
	entries *prometheus.Desc
	max     *prometheus.Desc
}

// NewConntrackCollector returns a collector reading from dir ("" for /proc).
func NewConntrackCollector(dir string) *ConntrackCollector {
	if dir == "" {
		dir = "/proc/sys/net/netfilter"
	}
	return &ConntrackCollector{
		Dir:     dir,
		entries: prometheus.NewDesc("kproxy_conntrack_entries", "Entries in the conntrack table (nf_conntrack_count)", nil, nil),
		max:     prometheus.NewDesc("kproxy_conntrack_max", "Size of the conntrack table (nf_conntrack_max)", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ConntrackCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.max
}

// Collect implements prometheus.Collector.
func (c *ConntrackCollector) Collect(ch chan<- prometheus.Metric) {
	if v, ok := readUint(filepath.Join(c.Dir, "nf_conntrack_count")); ok {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, v)
	}
	if v, ok := readUint(filepath.Join(c.Dir, "nf_conntrack_max")); ok {
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, v)
	}
}

func readUint(path string) (float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(v), true
}
