package dataplane

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// A ServiceCIDR change alone is applied (not skipped), as a partial sync that
// names no port, and only once.
func TestServiceCIDRChangeIsAppliedPartially(t *testing.T) {
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	snap := newSnap("").port("web", v1.ProtocolTCP, "10.96.0.1", endpoint("10.1.0.1:80")).s
	mustSync(t, c, snap, changes(portName("web", v1.ProtocolTCP)))
	st := mustSync(t, c, snap, state.ChangeSet{CIDRsChanged: true})
	req := r.last()
	if st.Skipped || len(r.reqs) != 2 || req.Full || !req.CIDRsChanged || len(req.Changed) != 0 {
		t.Fatalf("CIDR change: skipped=%v applies=%d full=%v cidrsChanged=%v changed=%d; want one partial apply naming no port",
			st.Skipped, len(r.reqs), req.Full, req.CIDRsChanged, len(req.Changed))
	}
	if st := mustSync(t, c, snap, state.ChangeSet{}); !st.Skipped {
		t.Fatalf("the CIDR change was applied again: %+v", st)
	}
}
