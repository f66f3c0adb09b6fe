//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	mobyipvs "github.com/moby/ipvs"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// recordingBatch creates through the fake one object per op, counts the calls,
// and fails the real servers listed in refuse.
type recordingBatch struct {
	next   IPVSBatch
	calls  int
	ops    int
	maxOps int
	// orphans counts real servers whose virtual server was not created earlier
	// in the same call.
	orphans int
	refuse  map[netip.AddrPort]bool
}

func (b *recordingBatch) Create(ops []CreateOp) []error {
	b.calls++
	b.ops += len(ops)
	b.maxOps = max(b.maxOps, len(ops))
	created := map[*mobyipvs.Service]bool{}
	for _, op := range ops {
		if op.Dest == nil {
			created[op.Service] = true
		} else if !created[op.Service] {
			b.orphans++
		}
	}
	var pass []CreateOp
	var at []int
	errs := make([]error, len(ops))
	for i, op := range ops {
		if op.Dest != nil && b.refuse[destAddr(op.Dest)] {
			errs[i] = syscall.EINVAL
			continue
		}
		pass = append(pass, op)
		at = append(at, i)
	}
	for j, err := range b.next.Create(pass) {
		errs[at[j]] = err
	}
	return errs
}

func withRecordingBatch(f *fixture) *recordingBatch {
	b := &recordingBatch{next: seqBatch{f.ipvs}, refuse: map[netip.AddrPort]bool{}}
	f.p.k.Batch = b
	return b
}

// TestColdSyncCreatesInOneBatch: a full sync hands every new virtual and real
// server to one batch; a later one-Service change does not use the batch.
func TestColdSyncCreatesInOneBatch(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	b := withRecordingBatch(f)
	a := clusterIP("a", "10.96.0.1", 80, v1.ProtocolTCP)
	a.NodePort = 30001
	f.set(a.Name, a, ep("10.1.1.1:80", 1), ep("10.1.1.2:80", 1))
	c := clusterIP("c", "10.96.0.3", 53, v1.ProtocolUDP)
	f.set(c.Name, c, ep("10.1.3.1:53", 1))
	f.sync(state.ChangeSet{})
	if b.calls != 1 {
		t.Fatalf("cold sync made %d batch calls, want 1", b.calls)
	}
	// a: ClusterIP and NodePort (on 192.168.7.2) virtual servers with 2 real servers each; c: 1 + 1.
	if b.ops != 3+3+2 || f.ipvs.Len() != 3 {
		t.Fatalf("batch ops %d (want 8), kernel virtual servers %d (want 3):\n%s", b.ops, f.ipvs.Len(), f.ipvs.Dump())
	}
	if w := f.weights(key("10.96.0.1:80", protoTCP)); !sameWeights(w, map[string]int{"10.1.1.1:80": 1, "10.1.1.2:80": 1}) {
		t.Fatalf("real servers of a: %v", w)
	}
	f.sync(f.set(c.Name, c, ep("10.1.3.2:53", 1)))
	if b.calls != 1 {
		t.Fatalf("a one-Service change used the batch (%d calls)", b.calls)
	}
	// What the batch recorded is what incremental syncs diff against: the new
	// endpoint replaced the old, nothing else was rewritten.
	if w := f.weights(key("10.96.0.3:53", protoUDP)); !sameWeights(w, map[string]int{"10.1.3.2:53": 1}) {
		t.Fatalf("real servers of c after the change: %v", w)
	}
}

// TestColdSyncCreatesInPieces: a cold sync larger than createPieceOps objects
// goes to the batch in several calls of at most that many objects, each virtual
// server in the same call as its real servers, and every object is created.
func TestColdSyncCreatesInPieces(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	b := withRecordingBatch(f)
	const services, endpoints = 3000, 5 // 18,000 objects
	for i := range services {
		sp := clusterIP(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), 80, v1.ProtocolTCP)
		var eps []state.Endpoint
		for j := range endpoints {
			eps = append(eps, ep(fmt.Sprintf("10.%d.%d.%d:8080", 1+j, i/250, i%250+1), 1))
		}
		f.set(sp.Name, sp, eps...)
	}
	f.sync(state.ChangeSet{})
	// 8,192 objects a piece: 1,365 Services of 6 objects, 1,365, then 270.
	if want := services * (1 + endpoints); b.ops != want || b.calls != 3 || b.maxOps > createPieceOps {
		t.Fatalf("batch calls %d, ops %d, largest call %d; want %d ops in 3 calls of at most %d",
			b.calls, b.ops, b.maxOps, want, createPieceOps)
	}
	if b.orphans != 0 {
		t.Fatalf("%d real servers were sent in another call than their virtual server", b.orphans)
	}
	if f.ipvs.Len() != services {
		t.Fatalf("kernel has %d virtual servers, want %d", f.ipvs.Len(), services)
	}
	for _, i := range []int{0, 1364, 1365, services - 1} { // around the first piece's end
		k := key(fmt.Sprintf("10.96.%d.%d:80", i/250, i%250+1), protoTCP)
		w := map[string]int{}
		for j := range endpoints {
			w[fmt.Sprintf("10.%d.%d.%d:8080", 1+j, i/250, i%250+1)] = 1
		}
		if got := f.weights(k); !sameWeights(got, w) {
			t.Fatalf("real servers of Service %d: %v, want %v", i, got, w)
		}
	}
}

// TestColdSyncErrorsNameTheService: a refused real server fails alone, naming
// its Service, the sync falls back to a full one, which creates it once the
// kernel accepts it; a refused virtual server names its Service and scheduler.
func TestColdSyncErrorsNameTheService(t *testing.T) {
	f := newFixture(t, proxierOptions{})
	b := withRecordingBatch(f)
	a := clusterIP("alpha", "10.96.0.1", 80, v1.ProtocolTCP)
	f.set(a.Name, a, ep("10.1.1.1:80", 1), ep("10.1.1.2:80", 1))
	bb := clusterIP("beta", "10.96.0.2", 80, v1.ProtocolTCP)
	f.set(bb.Name, bb, ep("10.1.2.1:80", 1))
	b.refuse[netip.MustParseAddrPort("10.1.1.2:80")] = true
	_, err := f.core.Sync(context.Background(), f.snap, state.ChangeSet{})
	if err == nil || !strings.Contains(err.Error(), "service "+a.Name.String()+": real server 10.1.1.2:80") || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("want the refused real server's error naming %s, got %v", a.Name, err)
	}
	if strings.Contains(err.Error(), bb.Name.String()) {
		t.Fatalf("the error names a Service that synced fine: %v", err)
	}
	if w := f.weights(key("10.96.0.2:80", protoTCP)); !sameWeights(w, map[string]int{"10.1.2.1:80": 1}) {
		t.Fatalf("the other Service was not created: %v", w)
	}
	if !f.p.needFull {
		t.Fatal("a failed cold sync must be followed by a full sync")
	}
	delete(b.refuse, netip.MustParseAddrPort("10.1.1.2:80"))
	f.sync(state.ChangeSet{})
	if w := f.weights(key("10.96.0.1:80", protoTCP)); !sameWeights(w, map[string]int{"10.1.1.1:80": 1, "10.1.1.2:80": 1}) {
		t.Fatalf("the retry did not complete alpha: %v", w)
	}

	g := newFixture(t, proxierOptions{})
	withRecordingBatch(g)
	g.set(a.Name, a, ep("10.1.1.1:80", 1))
	g.ipvs.Refuse("rr") // the node default: nothing to fall back to
	_, err = g.core.Sync(context.Background(), g.snap, state.ChangeSet{})
	if err == nil || !strings.Contains(err.Error(), "service "+a.Name.String()+": create virtual server TCP/10.96.0.1:80 (scheduler rr)") {
		t.Fatalf("want the refused virtual server naming its Service and scheduler, got %v", err)
	}
	if strings.Count(err.Error(), a.Name.String()) != 1 {
		t.Fatalf("the refused virtual server's real servers must not be reported again: %v", err)
	}
}

// TestColdSyncLackingSchedulerFallsBack: a Service asking for a scheduler the
// kernel lacks is created in the cold sync on the node default.
func TestColdSyncLackingSchedulerFallsBack(t *testing.T) {
	f := newFixture(t, proxierOptions{Scheduler: "wlc"})
	withRecordingBatch(f)
	f.ipvs.Refuse("sed")
	sp := clusterIP("sed", "10.96.0.2", 80, v1.ProtocolTCP)
	sp.Scheduler = "sed"
	f.set(sp.Name, sp, ep("10.1.0.2:80", 1))
	f.sync(state.ChangeSet{})
	k := key("10.96.0.2:80", protoTCP)
	if s := f.vs(k); s == nil || s.SchedName != "wlc" {
		t.Fatalf("virtual server %+v, want one on the node default wlc", s)
	}
	if w := f.weights(k); !sameWeights(w, map[string]int{"10.1.0.2:80": 1}) {
		t.Fatalf("real servers %v", w)
	}
}
