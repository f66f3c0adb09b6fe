package metrics

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
)

// labelSets gathers reg and returns, per metric name, its label names.
func labelSets(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		var names []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			names = append(names, lp.GetName())
		}
		sort.Strings(names)
		out[mf.GetName()] = strings.Join(names, ",")
	}
	return out
}

// The label sets are kube-proxy 1.37's (pkg/proxy/metrics): dashboards select on
// ip_family.
func TestLabelSetsAreUpstreams(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewForFamilies(reg, []string{IPv4, IPv6})
	now := time.Unix(1000, 0)
	m.Queued(now, 1, 1)
	m.Synced(SyncResult{Start: now, End: now.Add(time.Millisecond), Stats: dataplane.SyncStats{Full: true}})
	m.Synced(SyncResult{Start: now, End: now.Add(time.Millisecond)})
	m.HealthzTotal.WithLabelValues("200").Inc()
	m.LivezTotal.WithLabelValues("200").Inc()
	mm := RegisterModeMetrics(reg, "nftables")
	mm.NFTablesCleanupFailures.WithLabelValues(IPv6).Inc()
	mm.NFTablesLocalhostNodePortRejectedPackets.Read = func() ([]Sample, error) {
		return []Sample{{Labels: []string{IPv4, "UDP"}, Value: 3}}, nil
	}
	want := map[string]string{
		"kubeproxy_sync_proxy_rules_duration_seconds":                  "ip_family",
		"kubeproxy_sync_full_proxy_rules_duration_seconds":             "ip_family",
		"kubeproxy_sync_partial_proxy_rules_duration_seconds":          "ip_family",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds":            "ip_family",
		"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds":     "ip_family",
		"kubeproxy_network_programming_duration_seconds":               "ip_family",
		"kubeproxy_sync_proxy_rules_no_local_endpoints_total":          "ip_family,traffic_policy",
		"kubeproxy_sync_proxy_rules_service_changes_total":             "",
		"kubeproxy_sync_proxy_rules_service_changes_pending":           "",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total":            "",
		"kubeproxy_sync_proxy_rules_endpoint_changes_pending":          "",
		"kubeproxy_proxy_healthz_total":                                "code",
		"kubeproxy_proxy_livez_total":                                  "code",
		"kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total":   "ip_family",
		"kubeproxy_nftables_localhost_nodeport_rejected_packets_total": "ip_family,protocol",
	}
	got := labelSets(t, reg)
	for name, labels := range want {
		if l, ok := got[name]; !ok || l != labels {
			t.Errorf("%s: labels %q (present %v), want %q", name, l, ok, labels)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d metrics, want %d: %v", len(got), len(want), got)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "kubeproxy_sync_proxy_rules_duration_seconds" && len(mf.GetMetric()) != 2 {
			t.Errorf("a dual-stack node has %d sync duration series, want one per family", len(mf.GetMetric()))
		}
	}
}

func TestModeMetricsPerMode(t *testing.T) {
	for mode, want := range map[string][]string{
		"iptables": {"kubeproxy_iptables_ct_state_invalid_dropped_packets_total", "kubeproxy_iptables_localhost_nodeports_accepted_packets_total"},
		"ipvs":     nil,
		"nftables": {"kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total"},
	} {
		reg := prometheus.NewRegistry()
		mm := RegisterModeMetrics(reg, mode)
		if mm.IPTablesCTStateInvalidDroppedPackets != nil {
			mm.IPTablesCTStateInvalidDroppedPackets.Read = func() ([]Sample, error) { return []Sample{{Value: 5}}, nil }
			mm.IPTablesLocalhostNodePortsAcceptedPackets.Read = func() ([]Sample, error) { return []Sample{{Value: 1}}, nil }
		}
		if mm.NFTablesCleanupFailures != nil {
			mm.NFTablesCleanupFailures.WithLabelValues(IPv4).Inc()
		}
		got := labelSets(t, reg)
		for _, name := range want {
			if _, ok := got[name]; !ok {
				t.Errorf("%s: %s not registered: %v", mode, name, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: metrics %v", mode, got)
		}
	}
}

func TestComponentMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	RegisterComponentMetrics(reg, "v0.1.0-dev", []config.FeatureState{
		{Name: "KubeProxyIPVS", Stage: "DEPRECATED", Enabled: false}, {Name: "MultiCIDRServiceAllocator", Enabled: true}})
	want := `
# HELP kubernetes_feature_enabled This metric records the data about the stage and enablement of a k8s feature.
# TYPE kubernetes_feature_enabled gauge
kubernetes_feature_enabled{name="KubeProxyIPVS",stage="DEPRECATED"} 0
kubernetes_feature_enabled{name="MultiCIDRServiceAllocator",stage=""} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubernetes_feature_enabled"); err != nil {
		t.Error(err)
	}
	if got := labelSets(t, reg)["kubernetes_build_info"]; got != "build_date,compiler,git_commit,git_tree_state,git_version,go_version,major,minor,platform" {
		t.Errorf("build info labels %q", got)
	}
}
