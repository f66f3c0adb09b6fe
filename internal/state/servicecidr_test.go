package state

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testServiceCIDR(name string, cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
}

func TestTrackerServiceCIDRs(t *testing.T) {
	changes := 0
	tr := NewTracker(Options{OnChange: func() { changes++ }})
	snap, cs := tr.Snapshot()
	if snap.ServiceCIDRs != nil || cs.CIDRsChanged {
		t.Fatalf("no ServiceCIDR: got %v changed=%v, want none", snap.ServiceCIDRs, cs.CIDRsChanged)
	}

	tr.UpsertServiceCIDR(testServiceCIDR("kubernetes", "10.96.0.0/16", "fd00:96::/112"))
	tr.UpsertServiceCIDR(testServiceCIDR("extra", "10.97.0.5/24", "10.96.0.0/16"))
	snap, cs = tr.Snapshot()
	want := "[10.96.0.0/16 10.97.0.0/24 fd00:96::/112]"
	if got := fmt.Sprint(snap.ServiceCIDRs); got != want || !cs.CIDRsChanged || cs.Empty() {
		t.Fatalf("after two ServiceCIDRs: %s changed=%v empty=%v, want %s, changed, not empty", got, cs.CIDRsChanged, cs.Empty(), want)
	}
	if changes != 2 {
		t.Fatalf("OnChange called %d times, want 2", changes)
	}

	// The same content again changes nothing; nor does a resync without events.
	tr.UpsertServiceCIDR(testServiceCIDR("extra", "10.97.0.0/24", "10.96.0.0/16"))
	if _, cs = tr.Snapshot(); cs.CIDRsChanged || changes != 2 {
		t.Fatalf("identical update: changed=%v OnChange=%d", cs.CIDRsChanged, changes)
	}

	// Deleting one whose prefixes another still covers leaves the union alone
	// except for its own.
	tr.DeleteServiceCIDR("extra")
	snap, cs = tr.Snapshot()
	if got := fmt.Sprint(snap.ServiceCIDRs); got != "[10.96.0.0/16 fd00:96::/112]" || !cs.CIDRsChanged {
		t.Fatalf("after delete: %s changed=%v", got, cs.CIDRsChanged)
	}
	tr.DeleteServiceCIDR("kubernetes")
	if snap, cs = tr.Snapshot(); snap.ServiceCIDRs != nil || !cs.CIDRsChanged {
		t.Fatalf("after deleting all: %v changed=%v, want none", snap.ServiceCIDRs, cs.CIDRsChanged)
	}
}

func TestTrackerServiceCIDRInvalidKeepsLastGood(t *testing.T) {
	var rejected []string
	tr := NewTracker(Options{Reject: func(obj string, err error) { rejected = append(rejected, obj+": "+err.Error()) }})
	tr.UpsertServiceCIDR(testServiceCIDR("kubernetes", "10.96.0.0/16"))
	tr.Snapshot()
	tr.UpsertServiceCIDR(testServiceCIDR("kubernetes", "10.96.0.0/16", "10.300.0.0/16"))
	snap, cs := tr.Snapshot()
	if cs.CIDRsChanged || fmt.Sprint(snap.ServiceCIDRs) != "[10.96.0.0/16]" {
		t.Fatalf("invalid update replaced the last good prefixes: %v changed=%v", snap.ServiceCIDRs, cs.CIDRsChanged)
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0], "ServiceCIDR kubernetes: spec.cidrs[1]") {
		t.Fatalf("rejections %q, want one naming ServiceCIDR kubernetes and spec.cidrs[1]", rejected)
	}
}

func TestServiceCIDRPrefixesMasks(t *testing.T) {
	got, err := ServiceCIDRPrefixes(testServiceCIDR("a", "10.96.3.4/16"))
	if err != nil || len(got) != 1 || got[0] != netip.MustParsePrefix("10.96.0.0/16") {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := ServiceCIDRPrefixes(testServiceCIDR("a", "::ffff:10.0.0.0/104")); err == nil {
		t.Fatal("IPv4-mapped prefix accepted")
	}
}
