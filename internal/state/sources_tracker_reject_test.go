package state

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A rejected field is reported once per version of the object, not again each time
// the Service is rebuilt because its endpoints or the node changed.
func TestTrackerRejectsOncePerObjectVersion(t *testing.T) {
	tr, rejects := newTestTracker(t, "node-a")
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withAnnotation(AnnotationScheduler, "magic")))
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"))
	es.Annotations = map[string]string{AnnotationWeights: "bogus"}
	tr.UpsertEndpointSlice(es)
	tr.Snapshot()
	if len(*rejects) != 2 {
		t.Fatalf("rejects %+v, want the scheduler and the weights", *rejects)
	}
	tr.UpsertService(testService("ns", "other", "10.0.0.2"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-2", "web", map[string]int32{"http": 80}, ready("10.1.0.2")))
	tr.UpsertNode(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"x": "y"}}})
	tr.Snapshot()
	if len(*rejects) != 2 {
		t.Fatalf("rejected again without a new version: %+v", *rejects)
	}
	// A version that changes nothing kproxy reads is no change (the Tracker
	// compares converted Services), so it is not reported again.
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withAnnotation(AnnotationScheduler, "magic"), withLabel("v", "2")))
	tr.Snapshot()
	if len(*rejects) != 2 {
		t.Fatalf("a label-only update reported again: %+v", *rejects)
	}
	// A new version with the same problem is a new rejection; a fixed one clears it.
	tr.UpsertService(testService("ns", "web", "10.0.0.3", withAnnotation(AnnotationScheduler, "magic")))
	tr.Snapshot()
	if len(*rejects) != 3 {
		t.Fatalf("new version not reported: %+v", *rejects)
	}
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	tr.Snapshot()
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withAnnotation(AnnotationScheduler, "magic")))
	tr.Snapshot()
	if len(*rejects) != 4 {
		t.Fatalf("problem after a fix not reported: %+v", *rejects)
	}
}
