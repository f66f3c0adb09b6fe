//go:build linux

package nftables

import (
	"context"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// Damage behind kproxy's back, in the shared maps and chains and in a Service's
// own chains, is found by the periodic check and repaired by a full sync, in the
// real kernel: each kind breaks a Service's traffic, and the first sync after the
// check interval (the syncPeriod; here it has elapsed at every sync) restores it.
// Before the damage, the idle check costs one generation read and no apply.
func TestKernelDamageIsRepaired(t *testing.T) {
	web := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	sticky := &spec{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600 * time.Second}
	for _, tc := range []struct {
		name, addr string
		// damage returns the nft commands that do it, given the chain names.
		damage func(t *testing.T, tb *testbed, c damageChains) []string
	}{
		// web is on the shared path (plain sets pick-ips, pick-1-ips and the
		// dispatch chain pick), sticky has chains of its own (service-ips).
		{"flushed service-ips map", "10.96.0.17:80", fixed("flush map ip kproxy service-ips")},
		{"flushed nat-output chain", "10.96.0.10:80", fixed("flush chain ip kproxy nat-output")},
		{"deleted element", "10.96.0.17:80", fixed("delete element ip kproxy service-ips { 10.96.0.17 . tcp . 80 }")},
		{"map element changed, count kept", "10.96.0.17:80", fixed(
			"delete element ip kproxy service-ips { 10.96.0.17 . tcp . 80 }",
			"add element ip kproxy service-ips { 10.96.0.17 . tcp . 80 : drop }")},
		{"flushed pick-ips set", "10.96.0.10:80", fixed("flush set ip kproxy pick-ips")},
		{"deleted pick-1-ips element", "10.96.0.10:80", fixed("delete element ip kproxy pick-1-ips { 10.96.0.10 . tcp . 80 }")},
		{"pick-1-ips element replaced, count kept", "10.96.0.10:80", fixed(
			"delete element ip kproxy pick-1-ips { 10.96.0.10 . tcp . 80 }",
			"add element ip kproxy pick-1-ips { 10.96.0.99 . tcp . 80 }")},
		{"flushed pick dispatch chain", "10.96.0.10:80", fixed("flush chain ip kproxy pick")},
		{"base chain policy changed", "10.96.0.10:80", fixed("chain ip kproxy filter-input { policy drop ; }")},
		{"flushed per-Service chain", "10.96.0.17:80", func(_ *testing.T, _ *testbed, c damageChains) []string {
			return []string{"flush chain ip kproxy " + quote(c.service)}
		}},
		{"rule deleted from an endpoint chain", "10.96.0.17:80", func(t *testing.T, tb *testbed, c damageChains) []string {
			return []string{"delete rule ip kproxy " + quote(c.endpoint) + " handle " + dnatHandle(t, tb, c.endpoint)}
		}},
		{"rule inserted in a per-Service chain", "10.96.0.17:80", func(_ *testing.T, _ *testbed, c damageChains) []string {
			return []string{"insert rule ip kproxy " + quote(c.service) + " drop"}
		}},
		{"per-Service chains deleted", "10.96.0.17:80", func(_ *testing.T, _ *testbed, c damageChains) []string {
			// The kernel refuses to delete a chain something jumps to: flush the
			// jumps first, in the same transaction.
			return []string{"flush chain ip kproxy " + quote(c.service), "flush chain ip kproxy " + quote(c.endpoint),
				"delete chain ip kproxy " + quote(c.endpoint)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestbed(t)
			tb.p.core = dataplane.NewCore(tb.p.Proxier, dataplane.CoreOptions{CheckInterval: time.Nanosecond})
			snap := snapshotOf(map[*spec][]state.Endpoint{web: backendEndpoints()[:1], sticky: backendEndpoints()[:1]})
			tb.sync(t, snap)
			want := backends[0] + ":8080"
			if got, err := dialIdentity(t, tb.proxy, tc.addr); err != nil || got != want {
				t.Fatalf("before the damage: %q, %v", got, err)
			}
			before := checks(tb.p.Proxier)
			if st := tb.sync(t, snap); !st.Skipped {
				t.Fatalf("nothing damaged: %+v, want the sync skipped", st)
			}
			if after := checks(tb.p.Proxier); after["unchanged"] != before["unchanged"]+1 || after["verified"] != before["verified"] {
				t.Fatalf("the idle check read the table: checks %v, before %v", after, before)
			}
			c := damageChains{service: ownChain(t, tb.p.Proxier, "sticky", "service-"),
				endpoint: ownChain(t, tb.p.Proxier, "sticky", "endpoint-")}
			tb.proxy.exec(t, "nft", nftScript(tc.damage(t, tb, c)))
			if got, err := dialIdentity(t, tb.proxy, tc.addr); err == nil && got == want {
				t.Fatal("the damage left the Service working: the test proves nothing")
			}
			st, err := tb.p.Sync(context.Background(), snap, state.ChangeSet{})
			if err != nil || !st.Full {
				t.Fatalf("want a repairing full sync, got %+v %v", st, err)
			}
			if got, err := dialIdentity(t, tb.proxy, tc.addr); err != nil || got != want {
				t.Fatalf("after the repair: %q, %v", got, err)
			}
			if st := tb.sync(t, snap); !st.Skipped {
				t.Fatalf("after the repair: %+v, want the sync skipped", st)
			}
		})
	}
}

// Another table's commit moves the generation: without the event watch
// (watch_linux.go), the check reads kproxy's tables back, finds them intact (also
// after partial syncs, which rewrite chains) and applies nothing.
func TestKernelForeignCommitIsVerifiedNotRepaired(t *testing.T) {
	tb := newTestbed(t)
	tb.p.noWatch = true
	tb.p.core = dataplane.NewCore(tb.p.Proxier, dataplane.CoreOptions{CheckInterval: time.Nanosecond})
	specs := map[*spec][]state.Endpoint{
		{name: "web", clusterIP: "10.96.0.10", port: 80}:                                                  backendEndpoints(),
		{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}:                                  backendEndpoints(),
		{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh", schedFlags: []string{"mh-port"}}: backendEndpoints(),
		{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600 * time.Second}:                  backendEndpoints(),
		{name: "lb", clusterIP: "10.96.0.19", port: 443, nodePort: 30443, lbIPs: []string{"198.51.100.7"},
			ranges: []string{"203.0.113.0/24"}, eTPLocal: true}: backendEndpoints("local"),
		{name: "v6", clusterIP: "fd00:96::10", port: 80}:   {ep("fd00:200::2", 8080)},
		{name: "empty", clusterIP: "10.96.0.20", port: 80}: nil,
	}
	snap := snapshotOf(specs)
	snap.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("fd00:96::/112")}
	tb.sync(t, snap)
	foreign := 0
	verify := func(when string) {
		t.Helper()
		foreign++
		tb.proxy.exec(t, "nft", "add table ip other"+string(rune('a'+foreign)))
		before := checks(tb.p.Proxier)
		if st := tb.sync(t, snap); !st.Skipped {
			t.Fatalf("%s: a foreign commit caused %+v, want the sync skipped", when, st)
		}
		if after := checks(tb.p.Proxier); after["verified"] != before["verified"]+1 {
			t.Fatalf("%s: checks %v, before %v; want one verified", when, after, before)
		}
	}
	verify("after a full sync")
	// Endpoints move in every Service: chains are rewritten, map elements replaced.
	moved := map[state.ServicePortName][]state.Endpoint{}
	for n, eps := range snap.EndpointMap {
		if len(eps) > 1 {
			moved[n] = eps[1:]
		}
	}
	snap = withEndpoints(snap, moved)
	var changed []state.ServicePortName
	for n := range snap.ServiceMap {
		changed = append(changed, n)
	}
	if st := tb.sync(t, snap, changed...); st.Full {
		t.Fatal("the endpoint change was synced fully")
	}
	verify("after a partial sync")
}

type damageChains struct{ service, endpoint string }

func fixed(cmds ...string) func(*testing.T, *testbed, damageChains) []string {
	return func(*testing.T, *testbed, damageChains) []string { return cmds }
}

// quote leaves a chain name as it is: nft takes '/' in an unquoted name.
func quote(chain string) string { return chain }

// nftScript joins commands into one transaction for `nft`.
func nftScript(cmds []string) string {
	s := ""
	for i, c := range cmds {
		if i > 0 {
			s += "; "
		}
		s += c
	}
	return s
}

var handleRE = regexp.MustCompile(`dnat to .* # handle (\d+)`)

// dnatHandle is the handle of the DNAT rule of an endpoint chain.
func dnatHandle(t *testing.T, tb *testbed, chain string) string {
	t.Helper()
	out := tb.proxy.exec(t, "nft", "-a", "list", "chain", "ip", "kproxy", chain)
	m := handleRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no DNAT rule in %s:\n%s", chain, out)
	}
	return m[1]
}
