//go:build linux

package nftables

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

func TestSyncFailureCountsAndNextSyncIsFull(t *testing.T) {
	tb := newTestbed(t)
	reg := prometheus.NewRegistry()
	p, err := newCoreProxier(dataplane.Options{Config: testDPOptions().Config, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	tb.p = p
	s := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	snap := snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()})

	p.useNetns(-1) // no such namespace: every kernel access fails
	if _, err := p.Sync(context.Background(), snap, state.ChangeSet{}); err == nil {
		t.Fatal("Sync into an unusable namespace succeeded")
	}
	want := "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(
		"# HELP kubeproxy_sync_proxy_rules_nftables_sync_failures_total Cumulative nftables sync failures\n"+
			"# TYPE kubeproxy_sync_proxy_rules_nftables_sync_failures_total counter\n"+want+"\n"),
		"kubeproxy_sync_proxy_rules_nftables_sync_failures_total"); err != nil {
		t.Fatal(err)
	}

	p.useNetns(tb.proxy.fd)
	if st := tb.sync(t, snap); !st.Full {
		t.Fatal("the sync after a failure was not full")
	}
	if c := count(tb.connect(t, "10.96.0.10:80", 20)); len(c) == 0 {
		t.Fatal("no traffic after recovering")
	}
}
