package iptables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// someoneElse changes the fake kernel's tables behind the proxier's back.
func someoneElse(t *testing.T, f *fakeipt.Runner, input string) {
	t.Helper()
	if err := f.Restore(context.Background(), []byte(input), true); err != nil {
		t.Fatal(err)
	}
}

func twoServices() (*svc, *svc) {
	a := newSvc("ns", "a", "http", tcp, "10.96.0.1", 80).ep("10.244.1.2:8080", true, false).ep("10.244.1.3:8080", true, false)
	b := newSvc("ns", "b", "http", tcp, "10.96.0.2", 80).ep("10.244.2.2:8080", true, false)
	return a, b
}

func TestPartialSyncWritesOnlyTheChangedService(t *testing.T) {
	f := fakeipt.New()
	p := newTestProxier(f)
	a, b := twoServices()
	if _, err := p.Sync(context.Background(), snapshot(a, b), changes()); err != nil {
		t.Fatal(err)
	}
	// Replace one endpoint of a.
	a2 := newSvc("ns", "a", "http", tcp, "10.96.0.1", 80).ep("10.244.1.2:8080", true, false).ep("10.244.1.9:8080", true, false)
	st, err := p.Sync(context.Background(), snapshot(a2, b), changes(a.sp.Name))
	if err != nil {
		t.Fatal(err)
	}
	if st.Full {
		t.Fatal("want a partial sync")
	}
	in := f.LastInput()
	ch := chainsFor(a.sp.Name)
	oldSep := endpointChain(a.sp.Name, "10.244.1.3:8080")
	newSep := endpointChain(a.sp.Name, "10.244.1.9:8080")
	keptSep := endpointChain(a.sp.Name, "10.244.1.2:8080")
	for _, want := range []string{":" + ch.svc + " ", ":" + newSep + " ", "-X " + oldSep} {
		if !strings.Contains(in, want) {
			t.Errorf("restore lacks %q:\n%s", want, in)
		}
	}
	for _, bad := range []string{":KUBE-SERVICES", ":" + keptSep, chainsFor(b.sp.Name).svc, "-Z"} {
		if strings.Contains(in, bad) {
			t.Errorf("restore must not touch %q:\n%s", bad, in)
		}
	}
	if st.Written["nat"] != 5 {
		t.Errorf("written %v, want 5 nat rules (3 in SVC, 2 in the new SEP)", st.Written)
	}
}

func TestPartialSyncInsertsAndDeletesDispatchRules(t *testing.T) {
	f := fakeipt.New()
	p := newTestProxier(f)
	a, b := twoServices()
	if _, err := p.Sync(context.Background(), snapshot(a), changes()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sync(context.Background(), snapshot(a, b), changes(b.sp.Name)); err != nil {
		t.Fatal(err)
	}
	in := f.LastInput()
	if got := linesOf(in, "KUBE-SERVICES"); len(got) != 1 || !strings.HasPrefix(got[0], "-I KUBE-SERVICES 1 -d 10.96.0.2/32") {
		t.Fatalf("adding a Service must insert one rule into KUBE-SERVICES, got %q", got)
	}
	if _, err := p.Sync(context.Background(), snapshot(a), changes(b.sp.Name)); err != nil {
		t.Fatal(err)
	}
	in = f.LastInput()
	if got := linesOf(in, "KUBE-SERVICES"); len(got) != 1 || !strings.HasPrefix(got[0], "-D KUBE-SERVICES -d 10.96.0.2/32") {
		t.Fatalf("removing a Service must delete its rule, got %q", got)
	}
	if !strings.Contains(in, "-X "+chainsFor(b.sp.Name).svc) {
		t.Fatalf("stale chain not removed:\n%s", in)
	}
	// The -D must come before the chain it jumps to is deleted.
	if strings.Index(in, "-D KUBE-SERVICES") > strings.Index(in, "-X ") {
		t.Fatalf("rule deleted after its target chain:\n%s", in)
	}
}

func TestServiceLosingEndpointsMovesToReject(t *testing.T) {
	f := fakeipt.New()
	p := newTestProxier(f)
	a, _ := twoServices()
	p.Sync(context.Background(), snapshot(a), changes())
	empty := newSvc("ns", "a", "http", tcp, "10.96.0.1", 80)
	if _, err := p.Sync(context.Background(), snapshot(empty), changes(a.sp.Name)); err != nil {
		t.Fatal(err)
	}
	in := f.LastInput()
	if !strings.Contains(in, "*filter\n") || !strings.Contains(in, "-I KUBE-SERVICES 1 -d 10.96.0.1/32 -p tcp -m comment --comment \"ns/a:http has no endpoints\"") {
		t.Fatalf("want a REJECT rule inserted in filter KUBE-SERVICES:\n%s", in)
	}
}

func TestFailedRestoreForcesFullSync(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := fakeipt.New()
	now := time.Unix(1000, 0)
	p := withCore(NewProxier(Config{Runner: f, Render: testRenderConfig(), Registerer: reg}), dataplane.CoreOptions{Now: func() time.Time { return now }})
	a, b := twoServices()
	p.Sync(context.Background(), snapshot(a), changes())
	f.FailNext(errors.New("boom"))
	if _, err := p.Sync(context.Background(), snapshot(a, b), changes(b.sp.Name)); err == nil {
		t.Fatal("want the restore error")
	}
	st, err := p.Sync(context.Background(), snapshot(a, b), changes())
	if err != nil || !st.Full {
		t.Fatalf("after a failure the next sync must be full: %+v %v", st, err)
	}
	if got := testutil.ToFloat64(p.metrics.partialFailures); got != 1 {
		t.Errorf("partial failures = %v", got)
	}
	if got := testutil.ToFloat64(p.metrics.restoreFailures); got != 1 {
		t.Errorf("restore failures = %v", got)
	}
	n, err := testutil.GatherAndCount(reg, "kubeproxy_sync_proxy_rules_iptables_total", "kubeproxy_sync_proxy_rules_iptables_last")
	if err != nil || n != 4 {
		t.Errorf("rule gauges: %d series, %v (want nat and filter for both)", n, err)
	}
}

func TestMissingCanaryForcesFullSync(t *testing.T) {
	f := fakeipt.New()
	now := time.Unix(1000, 0)
	p := withCore(NewProxier(Config{Runner: f, Render: testRenderConfig()}), dataplane.CoreOptions{CheckInterval: time.Second, Now: func() time.Time { return now }})
	a, _ := twoServices()
	p.Sync(context.Background(), snapshot(a), changes())
	now = now.Add(2 * time.Second)
	if st, _ := p.Sync(context.Background(), snapshot(a), changes()); st.Full {
		t.Fatal("canary present: want a partial sync")
	}
	checks := f.ListCalls()
	if _, err := p.Sync(context.Background(), snapshot(a), changes(a.sp.Name)); err != nil || f.ListCalls() != checks {
		t.Fatalf("a sync with changes within CanaryInterval must not check the canaries (%d checks)", f.ListCalls()-checks)
	}
	someoneElse(t, f, "*nat\n-X "+chainCanary+"\nCOMMIT\n")
	now = now.Add(2 * time.Second)
	st, err := p.Sync(context.Background(), snapshot(a), changes())
	if err != nil || !st.Full {
		t.Fatalf("canary gone: want a full sync, got %+v %v", st, err)
	}
	someoneElse(t, f, "*nat\n-F PREROUTING\nCOMMIT\n")
	now = now.Add(2 * time.Second)
	st, err = p.Sync(context.Background(), snapshot(a), changes())
	if err != nil || !st.Full {
		t.Fatalf("PREROUTING jump gone (nat flushed): want a full sync, got %+v %v", st, err)
	}
}

// Damage behind kproxy's back that the canaries do not show is found by the
// periodic check and repaired: a flushed KUBE-SERVICES, a deleted OUTPUT jump, an
// edited Service chain (kube-proxy leaves these until the next full sync, an hour).
func TestDamageBehindOurBackIsRepaired(t *testing.T) {
	for _, tc := range []struct{ name, damage string }{
		{"flushed KUBE-SERVICES", "*nat\n-F KUBE-SERVICES\nCOMMIT\n"},
		{"OUTPUT jump deleted", "*nat\n-D OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n"},
		{"Service chain flushed", "*nat\n-F " + chainsFor(state.ServicePortName{Namespace: "ns", Name: "a", Port: "http", Protocol: tcp}).svc + "\nCOMMIT\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fakeipt.New()
			now := time.Unix(1000, 0)
			p := withCore(NewProxier(Config{Runner: f, Render: testRenderConfig()}), dataplane.CoreOptions{CheckInterval: time.Second, Now: func() time.Time { return now }})
			a, b := twoServices()
			if _, err := p.Sync(context.Background(), snapshot(a, b), changes()); err != nil {
				t.Fatal(err)
			}
			good := f.Dump()
			now = now.Add(2 * time.Second)
			if st, _ := p.Sync(context.Background(), snapshot(a, b), changes()); !st.Skipped {
				t.Fatalf("nothing damaged: %+v, want the sync skipped", st)
			}
			someoneElse(t, f, tc.damage)
			if f.Dump() == good {
				t.Fatal("the damage changed nothing")
			}
			now = now.Add(2 * time.Second)
			st, err := p.Sync(context.Background(), snapshot(a, b), changes())
			if err != nil || !st.Full {
				t.Fatalf("want a repairing full sync, got %+v %v", st, err)
			}
			if got := f.Dump(); got != good {
				t.Fatalf("not repaired:\n%s\nwant:\n%s", got, good)
			}
		})
	}
}

func TestNoLocalEndpointsCounted(t *testing.T) {
	p := newTestProxier(fakeipt.New())
	s := newSvc("ns", "itp", "", tcp, "10.96.0.16", 80).ep("10.244.2.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.InternalPolicyLocal = true })
	st, err := p.Sync(context.Background(), snapshot(s), changes())
	if err != nil {
		t.Fatal(err)
	}
	if st.NoLocalEndpoints["internal"] != 1 || st.NoLocalEndpoints["external"] != 0 {
		t.Fatalf("no-local counts %v", st.NoLocalEndpoints)
	}
}

func TestNodePortAddressesSelectLocalAddresses(t *testing.T) {
	f := fakeipt.New()
	p := withCore(NewProxier(Config{Runner: f, Render: testRenderConfig(), NodePortAddresses: []string{"192.168.0.0/16"},
		LocalAddresses: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("127.0.0.1")}, nil
		}}), dataplane.CoreOptions{})
	np := newSvc("ns", "np", "", tcp, "10.96.0.12", 80).ep("10.244.1.2:8080", true, false).
		with(func(sp *state.ServicePort) { sp.NodePort = 30012 })
	if _, err := p.Sync(context.Background(), snapshot(np), changes()); err != nil {
		t.Fatal(err)
	}
	got := linesOf(f.LastInput(), "-A KUBE-SERVICES -d 192.168")
	if len(got) != 1 || !strings.Contains(got[0], "-d 192.168.1.1/32") || len(linesOf(f.LastInput(), "nodeports; NOTE")) != 1 {
		t.Fatalf("NodePort dispatch %q, want only 192.168.1.1", got)
	}
}

func TestBadNodePortAddressesNameTheField(t *testing.T) {
	p := withCore(NewProxier(Config{Runner: fakeipt.New(), Render: testRenderConfig(), NodePortAddresses: []string{"not-a-cidr"}}), dataplane.CoreOptions{})
	_, err := p.Sync(context.Background(), snapshot(), changes())
	if err == nil || !strings.Contains(err.Error(), "nodePortAddresses") {
		t.Fatalf("want an error naming nodePortAddresses, got %v", err)
	}
}

func TestMassRemovalFallsBackToFullSync(t *testing.T) {
	f := fakeipt.New()
	p := newTestProxier(f)
	var all []*svc
	removed := changes()
	for i := 0; i < 100; i++ {
		s := newSvc("ns", fmt.Sprintf("s%03d", i), "", tcp, fmt.Sprintf("10.96.1.%d", i), 80).ep("10.244.1.2:80", true, false)
		all = append(all, s)
		removed.Ports[s.sp.Name] = struct{}{}
	}
	if _, err := p.Sync(context.Background(), snapshot(all...), changes()); err != nil {
		t.Fatal(err)
	}
	st, err := p.Sync(context.Background(), snapshot(), removed)
	if err != nil || !st.Full {
		t.Fatalf("removing every Service: want a full sync, got %+v %v", st, err)
	}
}
