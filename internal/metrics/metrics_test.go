package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

func TestSyncedRecordsUpstreamMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	start := time.Unix(1000, 0)
	m.Queued(start, 3, 5)
	if v := testutil.ToFloat64(m.ServiceChangesPending); v != 3 {
		t.Errorf("service changes pending = %v, want 3", v)
	}
	m.Synced(SyncResult{
		Start: start, End: start.Add(20 * time.Millisecond),
		Stats:   dataplane.SyncStats{Full: true, NoLocalEndpoints: map[string]int{"external": 2}},
		Changes: state.ChangeSet{ServiceEvents: 3, EndpointEvents: 5, TriggerTimes: []time.Time{start.Add(-2 * time.Second)}},
	})
	m.Synced(SyncResult{Start: start, End: start.Add(time.Millisecond), Changes: state.ChangeSet{EndpointEvents: 1}})
	m.Synced(SyncResult{Start: start, End: start, Err: os.ErrInvalid, Changes: state.ChangeSet{ServiceEvents: 1}})

	want := `
# HELP kubeproxy_sync_proxy_rules_service_changes_total Cumulative proxy rules Service changes
# TYPE kubeproxy_sync_proxy_rules_service_changes_total counter
kubeproxy_sync_proxy_rules_service_changes_total 4
# HELP kubeproxy_sync_proxy_rules_endpoint_changes_total Cumulative proxy rules Endpoint changes
# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_total counter
kubeproxy_sync_proxy_rules_endpoint_changes_total 6
# HELP kubeproxy_sync_proxy_rules_service_changes_pending Pending proxy rules Service changes
# TYPE kubeproxy_sync_proxy_rules_service_changes_pending gauge
kubeproxy_sync_proxy_rules_service_changes_pending 0
# HELP kubeproxy_sync_proxy_rules_no_local_endpoints_total Number of services with a Local traffic policy and no endpoints
# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge
kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"} 0
kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="internal"} 0
# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1000.001
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"kubeproxy_sync_proxy_rules_service_changes_total", "kubeproxy_sync_proxy_rules_endpoint_changes_total",
		"kubeproxy_sync_proxy_rules_service_changes_pending", "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.SyncDuration); n != 1 {
		t.Errorf("sync duration series = %d", n)
	}
	if got := histCount(t, reg, "kubeproxy_sync_proxy_rules_duration_seconds"); got != 2 {
		t.Errorf("sync durations observed = %d, want 2 (failed syncs are not timed)", got)
	}
	if got := histCount(t, reg, "kubeproxy_sync_full_proxy_rules_duration_seconds"); got != 1 {
		t.Errorf("full syncs = %d, want 1", got)
	}
	if got := histCount(t, reg, "kubeproxy_sync_partial_proxy_rules_duration_seconds"); got != 1 {
		t.Errorf("partial syncs = %d, want 1", got)
	}
	if got := histCount(t, reg, "kubeproxy_network_programming_duration_seconds"); got != 1 {
		t.Errorf("network programming observations = %d, want 1", got)
	}
}

func histCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}

func TestNewWithNilRegistererRegistersNothing(t *testing.T) {
	m := New(nil)
	m.Queued(time.Now(), 1, 1) // must not panic
}

func TestConntrackCollectorReadsAtScrapeTime(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nf_conntrack_count", "42\n")
	write("nf_conntrack_max", "262144\n")
	c := NewConntrackCollector(dir)
	want := `
# HELP kproxy_conntrack_entries Entries in the conntrack table (nf_conntrack_count)
# TYPE kproxy_conntrack_entries gauge
kproxy_conntrack_entries 42
# HELP kproxy_conntrack_max Size of the conntrack table (nf_conntrack_max)
# TYPE kproxy_conntrack_max gauge
kproxy_conntrack_max 262144
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	write("nf_conntrack_count", "43\n")
	if v := testutil.CollectAndCount(c, "kproxy_conntrack_entries"); v != 1 {
		t.Errorf("entries series = %d", v)
	}
}

func TestConntrackCollectorOmitsUnreadableValues(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nf_conntrack_max"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewConntrackCollector(dir)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series from a directory with no readable values, want 0", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gather with missing values failed: %v", err)
	}
}
