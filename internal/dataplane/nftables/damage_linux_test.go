//go:build linux

package nftables

import (
	"context"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// Damage behind kproxy's back in the shared maps and chains is found by the
// periodic check and repaired by a full sync, in the real kernel: a flushed
// service-ips map (every ClusterIP dead) and a flushed dispatch chain.
func TestKernelDamageIsRepaired(t *testing.T) {
	for _, tc := range []struct{ name, damage string }{
		{"flushed service-ips map", "flush map ip kproxy service-ips"},
		{"flushed nat-output chain", "flush chain ip kproxy nat-output"},
		{"deleted element", "delete element ip kproxy service-ips { 10.96.0.10 . tcp . 80 }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestbed(t)
			tb.p.core = dataplane.NewCore(tb.p.Proxier, dataplane.CoreOptions{CheckInterval: time.Nanosecond})
			s := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
			snap := snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()[:1]})
			tb.sync(t, snap)
			if got, err := dialIdentity(t, tb.proxy, "10.96.0.10:80"); err != nil || got != backends[0]+":8080" {
				t.Fatalf("before the damage: %q, %v", got, err)
			}
			if st := tb.sync(t, snap); !st.Skipped {
				t.Fatalf("nothing damaged: %+v, want the sync skipped", st)
			}
			tb.proxy.exec(t, "nft", tc.damage)
			if _, err := dialIdentity(t, tb.proxy, "10.96.0.10:80"); err == nil {
				t.Fatal("the damage left the Service working: the test proves nothing")
			}
			st, err := tb.p.Sync(context.Background(), snap, state.ChangeSet{})
			if err != nil || !st.Full {
				t.Fatalf("want a repairing full sync, got %+v %v", st, err)
			}
			if got, err := dialIdentity(t, tb.proxy, "10.96.0.10:80"); err != nil || got != backends[0]+":8080" {
				t.Fatalf("after the repair: %q, %v", got, err)
			}
		})
	}
}
