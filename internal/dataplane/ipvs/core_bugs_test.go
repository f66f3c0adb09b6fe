//go:build linux

package ipvs

import (
	"context"
	"net/netip"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeconntrack"
	"kproxy.dev/kproxy/internal/testing/fakeipvs"
)

// The three ipvs bugs the proxier core fixed, on the stateful fakes.

// A node zone label change re-categorises ClusterIP endpoints (ipvs kept the old
// zone's).
func TestNodeZoneChangeMovesTopologyHintedEndpoints(t *testing.T) {
	f := newFixture(t, proxierOptions{GracefulTimeout: hour})
	sp := clusterIP("zoned", "10.96.0.30", 80, v1.ProtocolTCP)
	a, b := ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)
	a.Hints, b.Hints = &state.Hints{Zones: []string{"z1"}}, &state.Hints{Zones: []string{"z2"}}
	f.snap.Node = state.NodeInfo{Name: "n1", Zone: "z1"}
	f.sync(f.set(sp.Name, sp, a, b))
	k := key("10.96.0.30:80", protoTCP)
	if got := f.weights(k); !sameWeights(got, map[string]int{"10.1.0.1:80": 1}) {
		t.Fatalf("zone z1: real servers %v, want only 10.1.0.1:80", got)
	}
	next := *f.snap
	next.Node = state.NodeInfo{Name: "n1", Zone: "z2"}
	f.snap = &next
	f.sync(state.ChangeSet{NodeChanged: true})
	got := f.weights(k)
	if got["10.1.0.2:80"] != 1 || got["10.1.0.1:80"] > 0 {
		t.Fatalf("zone z2: real servers %v, want 10.1.0.2:80 serving and 10.1.0.1:80 gone or drained", got)
	}
}

// A UDP port gaining its first endpoint forgets the flows recorded while it had
// none, in ipvs mode too (only iptables did).
func TestUDPPortGainingFirstEndpointForgetsFlows(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("dns", "10.96.0.10", 53, v1.ProtocolUDP)
	f.sync(f.set(sp.Name, sp))
	// Rejected while the port had no endpoint: recorded un-NATed.
	f.ct.Add(fakeconntrack.UDP("10.244.1.5:40000", "10.96.0.10:53", "10.96.0.10:53"))
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:53", 1)))
	if len(f.ct.Flows()) != 0 {
		t.Fatalf("flows left after the port gained an endpoint: %v", f.ct.Flows())
	}
}

// A full sync (after a failure) still cleans the flows of the endpoints removed by
// the failed sync (ipvs skipped conntrack cleanup on full syncs).
func TestFullSyncAfterFailureCleansStaleUDPFlows(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("dns", "10.96.0.10", 53, v1.ProtocolUDP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:53", 1), ep("10.1.0.2:53", 1)))
	f.ct.Add(fakeconntrack.UDP("10.244.1.5:40000", "10.96.0.10:53", "10.1.0.1:53"))
	// The same sync removes 10.1.0.1 and adds a Service the kernel refuses.
	f.ipvs.Refuse("rr")
	f.set(sp.Name, sp, ep("10.1.0.2:53", 1))
	bad := clusterIP("bad", "10.96.0.2", 80, v1.ProtocolTCP)
	cs := f.set(bad.Name, bad, ep("10.1.0.9:80", 1))
	cs.Ports[sp.Name] = struct{}{}
	if _, err := f.core.Sync(context.Background(), f.snap, cs); err == nil {
		t.Fatal("want the kernel's refusal")
	}
	f.ipvs.Refuse()
	st, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{})
	if err != nil || !st.Full {
		t.Fatalf("retry: full=%v err=%v, want a full sync", st.Full, err)
	}
	if len(f.ct.Flows()) != 0 {
		t.Fatalf("the flow to the removed endpoint survived the full sync: %v", f.ct.Flows())
	}
}

// Services with Local policy and no local endpoint are counted in ipvs mode (the
// count was always 0).
func TestNoLocalEndpointsCountedInIPVSMode(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	sp := clusterIP("itp", "10.96.0.40", 80, v1.ProtocolTCP)
	sp.InternalPolicyLocal = true
	st, err := f.core.Sync(context.Background(), f.snap, f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if st.NoLocalEndpoints["internal"] != 1 {
		t.Fatalf("no-local counts %v, want internal=1", st.NoLocalEndpoints)
	}
}

// Damage behind kproxy's back is found by the periodic check and repaired by the
// next (full) sync: a deleted virtual server, a flushed ipset, a removed
// local route through kube-ipvs0.
func TestDamageIsRepaired(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(f *fixture)
	}{
		{"virtual server deleted", func(f *fixture) {
			svcs, _ := f.ipvs.GetServices()
			for _, s := range svcs {
				if err := f.ipvs.DelService(s); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"ipset flushed", func(f *fixture) {
			if err := f.ipset.Restore(context.Background(), "flush "+setClusterIP+"\n"); err != nil {
				t.Fatal(err)
			}
		}},
		{"local route removed", func(f *fixture) {
			if err := f.links.DelAddr(DummyLink, netip.MustParseAddr("10.96.0.50")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			f := newFixture(t, proxierOptions{}, dataplane.CoreOptions{CheckInterval: time.Second, Now: func() time.Time { return now }})
			sp := clusterIP("web", "10.96.0.50", 80, v1.ProtocolTCP)
			f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1)))
			now = now.Add(2 * time.Second)
			if st, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{}); err != nil || !st.Skipped {
				t.Fatalf("nothing damaged: %+v %v, want the sync skipped", st, err)
			}
			tc.damage(f)
			now = now.Add(2 * time.Second)
			st, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{})
			if err != nil || !st.Full {
				t.Fatalf("want a repairing full sync, got %+v %v", st, err)
			}
			now = now.Add(2 * time.Second)
			if st, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{}); err != nil || !st.Skipped {
				t.Fatalf("after the repair the check must find nothing: %+v %v", st, err)
			}
		})
	}
}

// A real server draining at weight 0 after its endpoint went (graceful
// termination) is kproxy's own doing, not damage: the check must not force full
// syncs while it drains.
func TestDrainingRealServerIsNotDamage(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newFixture(t, proxierOptions{GracefulTimeout: hour}, dataplane.CoreOptions{CheckInterval: time.Second, Now: func() time.Time { return now }})
	sp := clusterIP("web", "10.96.0.60", 80, v1.ProtocolTCP)
	k := key("10.96.0.60:80", protoTCP)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.1:80", 1), ep("10.1.0.2:80", 1)))
	f.ipvs.SetConns(fakeipvs.Key(k), netip.MustParseAddrPort("10.1.0.1:80"), 1, 0)
	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:80", 1)))
	if w, ok := f.weights(k)["10.1.0.1:80"]; !ok || w != 0 {
		t.Fatalf("real servers %v, want 10.1.0.1:80 draining at weight 0", f.weights(k))
	}
	now = now.Add(2 * time.Second)
	if st, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{}); err != nil || !st.Skipped {
		t.Fatalf("a draining real server made the check report damage: %+v %v", st, err)
	}
}
