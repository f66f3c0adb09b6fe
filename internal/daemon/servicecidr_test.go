package daemon

import (
	"fmt"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kproxy.dev/kproxy/internal/state"
)

// The handler the daemon gives its source must reach the tracker with ServiceCIDRs.
func TestNodeWatchPassesServiceCIDRs(t *testing.T) {
	tr := state.NewTracker(state.Options{})
	var h state.Handler = &nodeWatch{Handler: tr}
	ch, ok := h.(state.ServiceCIDRHandler)
	if !ok {
		t.Fatal("the daemon's handler takes no ServiceCIDRs: the source would not watch them")
	}
	ch.UpsertServiceCIDR(&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/16"}}})
	if snap, cs := tr.Snapshot(); fmt.Sprint(snap.ServiceCIDRs) != "[10.96.0.0/16]" || !cs.CIDRsChanged {
		t.Fatalf("tracker got %v (changed=%v)", snap.ServiceCIDRs, cs.CIDRsChanged)
	}
	ch.DeleteServiceCIDR("kubernetes")
	if snap, _ := tr.Snapshot(); snap.ServiceCIDRs != nil {
		t.Fatalf("after delete the tracker still has %v", snap.ServiceCIDRs)
	}
}
