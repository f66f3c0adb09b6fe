package dataplane

import (
	"context"
	"errors"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func manyEndpoints(n int) []state.Endpoint {
	eps := make([]state.Endpoint, n)
	for i := range eps {
		eps[i] = endpoint(fmt.Sprintf("10.%d.%d.%d:80", 1+i>>16, i>>8&255, i&255))
	}
	return eps
}

// A change to a small Service that is queued together with a change to a Service
// of LargePortEndpoints or more reaches the mode in an Apply of its own, before
// the large one's: the slow Service does not hold it back.
func TestSmallChangeIsAppliedBeforeALargeService(t *testing.T) {
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	big, web, dns := portName("big", v1.ProtocolTCP), portName("web", v1.ProtocolTCP), portName("dns", v1.ProtocolUDP)
	build := func(bigEps int, webEP string) *state.Snapshot {
		return newSnap("").port("big", v1.ProtocolTCP, "10.96.0.1", manyEndpoints(bigEps)...).
			port("web", v1.ProtocolTCP, "10.96.0.2", endpoint(webEP)).
			port("dns", v1.ProtocolUDP, "10.96.0.3", endpoint("10.2.0.9:53")).s
	}
	mustSync(t, c, build(LargePortEndpoints+5, "10.2.0.1:80"), changes(big, web, dns))
	if len(r.reqs) != 1 || !r.last().Full {
		t.Fatalf("first sync: %d applies, want one full one (never split)", len(r.reqs))
	}

	st := mustSync(t, c, build(LargePortEndpoints+6, "10.2.0.2:80"), changes(big, web, dns))
	if len(r.reqs) != 3 {
		t.Fatalf("partial sync of a large and two small ports: %d applies, want 2", len(r.reqs)-1)
	}
	first, second := r.reqs[1], r.reqs[2]
	if first.Full || len(first.Changed) != 2 || !has(first.Changed, web) || !has(first.Changed, dns) {
		t.Fatalf("first apply: full=%v changed=%v, want the two small ports", first.Full, first.Changed)
	}
	if second.Full || len(second.Changed) != 1 || !has(second.Changed, big) {
		t.Fatalf("second apply: full=%v changed=%v, want the large port alone", second.Full, second.Changed)
	}
	if st.Full {
		t.Fatal("the split sync reported itself full")
	}

	// A Service that shrinks below the threshold is still slow to rewrite: large.
	mustSync(t, c, build(3, "10.2.0.3:80"), changes(big, web))
	if len(r.reqs) != 5 || !has(r.reqs[4].Changed, big) || has(r.reqs[3].Changed, big) {
		t.Fatalf("shrinking Service: applies %d, want it applied after the small one", len(r.reqs)-3)
	}
	// Only small ports, or only the large one: one Apply, as before.
	mustSync(t, c, build(3, "10.2.0.4:80"), changes(web, dns))
	if len(r.reqs) != 6 {
		t.Fatalf("small ports only: %d applies, want 1", len(r.reqs)-5)
	}
}

// A failure in the first half of a split sync stops it and makes the next sync
// full, as any failed Apply does; PartialErrors of both halves are joined.
func TestSplitSyncErrors(t *testing.T) {
	big, web := portName("big", v1.ProtocolTCP), portName("web", v1.ProtocolTCP)
	snap := func(ep string) *state.Snapshot {
		return newSnap("").port("big", v1.ProtocolTCP, "10.96.0.1", manyEndpoints(LargePortEndpoints)...).
			port("web", v1.ProtocolTCP, "10.96.0.2", endpoint(ep)).s
	}
	r, clk := &recorder{}, newClock()
	c := newTestCore(r, clk, nil)
	mustSync(t, c, snap("10.2.0.1:80"), changes(big, web))
	r.fail = errors.New("kernel said no")
	if _, err := c.Sync(context.Background(), snap("10.2.0.2:80"), changes(big, web)); err == nil || len(r.reqs) != 2 {
		t.Fatalf("failed first half: err %v after %d applies, want the error and no second apply", err, len(r.reqs)-1)
	}
	r.fail = nil
	mustSync(t, c, snap("10.2.0.2:80"), state.ChangeSet{})
	if !r.last().Full {
		t.Fatal("the sync after a failed split sync is not full")
	}

	pe := &PartialError{Errs: []error{errors.New("svc a")}}
	r.fail = pe
	_, err := c.Sync(context.Background(), snap("10.2.0.3:80"), changes(big, web))
	if !IsPartial(err) || len(err.(*PartialError).Errs) != 2 {
		t.Fatalf("partial errors of both halves: %v, want one PartialError with 2 errors", err)
	}
}

func has(m map[state.ServicePortName]struct{}, n state.ServicePortName) bool {
	_, ok := m[n]
	return ok
}
