package iptables

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// dualFake is the mode's dual-stack Programmer on two strict fakes, driven by the
// core.
type dualFake struct {
	core   *dataplane.Core
	d      *dualProxier
	f4, f6 *fakeipt.Runner
}

func newDualFake(reg prometheus.Registerer) *dualFake {
	f4, f6 := fakeipt.NewIPv4(), fakeipt.NewIPv6()
	d := &dualProxier{
		v4: NewProxier(Config{Runner: f4, Render: testRenderConfig(), Registerer: reg}),
		v6: NewProxier(Config{Runner: f6, Render: ipv6RenderConfig(), Registerer: reg}),
	}
	now := time.Unix(1000, 0)
	return &dualFake{core: dataplane.NewCore(d, dataplane.CoreOptions{Now: func() time.Time { return now }}), d: d, f4: f4, f6: f6}
}

func (f *dualFake) sync(t *testing.T, snap *state.Snapshot, cs state.ChangeSet) dataplane.SyncStats {
	t.Helper()
	st, err := f.core.Sync(context.Background(), snap, cs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDualSyncPerFamily: full and partial syncs of a dual-stack Service write
// each family's half to that family's tool only, and the counts add up.
func TestDualSyncPerFamily(t *testing.T) {
	f := newDualFake(nil)
	web := dualStackLB()
	st := f.sync(t, snapshot(web), changes())
	if !st.Full || st.Rules["nat"] == 0 {
		t.Fatalf("first sync: %+v", st)
	}
	for _, c := range []struct {
		fake *fakeipt.Runner
		dnat string
	}{{f.f4, "10.244.1.2:8080"}, {f.f6, "[fd00:244::2:2]:8080"}} {
		if !strings.Contains(c.fake.Dump(), "--to-destination "+c.dnat) {
			t.Errorf("no DNAT to %s:\n%s", c.dnat, c.fake.Dump())
		}
	}
	n4 := len(f.f4.Restores())
	// An IPv6 endpoint is added: only ip6tables is written.
	web2 := dualStackLB().ep("[fd00:244::3:2]:8080", true, false)
	st = f.sync(t, snapshot(web2), changes(web.sp.Name))
	if st.Full {
		t.Fatal("want a partial sync")
	}
	if len(f.f4.Restores()) != n4 {
		t.Errorf("an IPv6 endpoint change wrote iptables:\n%s", f.f4.LastInput())
	}
	if !strings.Contains(f.f6.LastInput(), "[fd00:244::3:2]:8080") {
		t.Errorf("ip6tables restore lacks the new endpoint:\n%s", f.f6.LastInput())
	}
	total := 0
	for _, fake := range []*fakeipt.Runner{f.f4, f.f6} {
		for _, table := range []string{"filter", "nat"} {
			for _, c := range fake.Chains(table) {
				if strings.HasPrefix(c, "KUBE-") {
					total += len(fake.Rules(table, c))
				}
			}
		}
	}
	if got := st.Rules["nat"] + st.Rules["filter"]; got != total {
		t.Errorf("Rules count %d, the two fakes' KUBE- chains hold %d", got, total)
	}
}

// TestDualIPv6FailureKeepsIPv4Serving: a failing ip6tables restore fails the sync
// (retried as a full one) but IPv4 is programmed all the same.
func TestDualIPv6FailureKeepsIPv4Serving(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newDualFake(reg)
	f.f6.FailNext(errors.New("ip6tables broke"))
	_, err := f.core.Sync(context.Background(), snapshot(dualStackLB()), changes())
	if err == nil || !strings.Contains(err.Error(), "ip6tables broke") {
		t.Fatalf("want the IPv6 error, got %v", err)
	}
	if !strings.Contains(f.f4.Dump(), "--to-destination 10.244.1.2:8080") {
		t.Fatalf("IPv4 not programmed while IPv6 failed:\n%s", f.f4.Dump())
	}
	st := f.sync(t, snapshot(dualStackLB()), changes())
	if !st.Full || !strings.Contains(f.f6.Dump(), "--to-destination [fd00:244::1:2]:8080") {
		t.Fatalf("retry: %+v\n%s", st, f.f6.Dump())
	}
	want := `
# HELP kubeproxy_sync_proxy_rules_iptables_restore_failures_total Number of failed iptables-restore calls.
# TYPE kubeproxy_sync_proxy_rules_iptables_restore_failures_total counter
kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv4"} 0
kubeproxy_sync_proxy_rules_iptables_restore_failures_total{ip_family="IPv6"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"); err != nil {
		t.Error(err)
	}
	n, err := testutil.GatherAndCount(reg, "kubeproxy_sync_proxy_rules_iptables_total")
	if err != nil || n != 4 {
		t.Errorf("iptables_total: %d series, %v (want nat and filter for each family)", n, err)
	}
}

// TestDualDamagedAndCleanup: damage in either family is found; Cleanup empties both.
func TestDualDamagedAndCleanup(t *testing.T) {
	f := newDualFake(nil)
	f.sync(t, snapshot(dualStackLB()), changes())
	ctx := context.Background()
	if bad, err := f.d.Damaged(ctx); bad || err != nil {
		t.Fatalf("fresh sync reported damaged: %v %v", bad, err)
	}
	someoneElse(t, f.f6, "*nat\n-F KUBE-SERVICES\nCOMMIT\n")
	if bad, err := f.d.Damaged(ctx); !bad || err != nil {
		t.Fatalf("flushed ip6tables KUBE-SERVICES not found: %v %v", bad, err)
	}
	if err := f.d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, fake := range []*fakeipt.Runner{f.f4, f.f6} {
		if d := fake.Dump(); strings.Contains(d, "KUBE-") {
			t.Errorf("cleanup left:\n%s", d)
		}
	}
}
