package state

import (
	"reflect"
	"testing"
	"unsafe"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
)

// A Service with one slice gets the slice's endpoint lists in its snapshot as
// they are: the Tracker holds one copy of each endpoint set.
func TestTrackerSharesASingleSlicesEndpoints(t *testing.T) {
	tr, _ := newTestTracker(t, "node-a")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	s := tr.ConvertSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.2"), ready("10.1.0.1"), ready("10.1.0.1")))
	tr.UpsertSlice(s)
	snap, _ := tr.Snapshot()
	eps := snap.EndpointsOf(portName("ns", "web", "http"))
	if got := endpointStrings(eps); !reflect.DeepEqual(got, []string{"10.1.0.1:80", "10.1.0.2:80"}) {
		t.Fatalf("endpoints %v, want sorted and deduplicated", got)
	}
	if own := s.Endpoints("http"); len(own) == 0 || &own[0] != &eps[0] {
		t.Fatal("the snapshot holds a copy of the slice's endpoints, not the slice's list")
	}
}

// Merging two slices of one Service builds a new list and leaves each slice's
// own lists as they were (other snapshots and the informer cache share them).
func TestTrackerMergeLeavesSliceListsAlone(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	ports := map[string]int32{"http": 80}
	a := tr.ConvertSlice(testSlice("ns", "web-a", "web", ports, ready("10.1.0.3"), testEP{ip: "10.1.0.1", notReady: true}))
	b := tr.ConvertSlice(testSlice("ns", "web-b", "web", ports, ready("10.1.0.1"), ready("10.1.0.2")))
	wantA := append([]Endpoint(nil), a.Endpoints("http")...)
	wantB := append([]Endpoint(nil), b.Endpoints("http")...)
	tr.UpsertSlice(a)
	tr.UpsertSlice(b)
	snap, _ := tr.Snapshot()
	eps := snap.EndpointsOf(portName("ns", "web", "http"))
	if got := endpointStrings(eps); !reflect.DeepEqual(got, []string{"10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"}) {
		t.Fatalf("merged %v", got)
	}
	if !eps[0].Ready {
		t.Fatal("10.1.0.1: the ready copy (slice b) must win over slice a's not-ready one")
	}
	if !reflect.DeepEqual(a.Endpoints("http"), wantA) || !reflect.DeepEqual(b.Endpoints("http"), wantB) {
		t.Fatal("the merge modified a slice's own endpoint list")
	}
}

// An update that converts to the same Slice changes nothing; one that changes
// an endpoint, the trigger time or the Service does.
func TestTrackerSliceUpdatesCompareConverted(t *testing.T) {
	var changes int
	tr := NewTracker(Options{OnChange: func() { changes++ }})
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"))
	tr.UpsertEndpointSlice(es)
	again := es.DeepCopy()
	again.ResourceVersion = "2" // not read: the same state
	tr.UpsertEndpointSlice(again)
	if changes != 1 {
		t.Fatalf("%d changes after an identical update, want 1", changes)
	}
	moved := es.DeepCopy()
	moved.Endpoints[0].Addresses = []string{"10.1.0.9"}
	tr.UpsertEndpointSlice(moved)
	trig := moved.DeepCopy()
	trig.Annotations = map[string]string{TriggerTimeAnnotation: "2026-01-02T03:04:05Z"}
	tr.UpsertEndpointSlice(trig)
	other := trig.DeepCopy()
	other.Labels = map[string]string{"kubernetes.io/service-name": "api"}
	tr.UpsertEndpointSlice(other)
	if changes != 4 {
		t.Fatalf("%d changes, want 4", changes)
	}
}

// A Slice is what the kube source's informer caches: it must give the cache its
// key, and tell the other proxies' and headless Services' slices apart.
func TestSliceIsAnInformerObject(t *testing.T) {
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"))
	s := ConvertSlice(es, "")
	key, err := cache.MetaNamespaceKeyFunc(s)
	if err != nil || key != "ns/web-1" {
		t.Fatalf("key %q, %v", key, err)
	}
	if a, err := meta.Accessor(s); err != nil || a.GetName() != "web-1" {
		t.Fatalf("accessor: %v", err)
	}
	if c := s.DeepCopyObject().(*Slice); c == s || !reflect.DeepEqual(c, s) {
		t.Fatal("DeepCopyObject")
	}
	if s.Foreign || s.Service != "web" {
		t.Fatalf("slice %+v", s)
	}
	for _, l := range []string{LabelServiceProxyName, v1.IsHeadlessService} {
		f := es.DeepCopy()
		f.Labels[l] = ""
		if !ConvertSlice(f, "").Foreign {
			t.Errorf("label %s: not Foreign", l)
		}
	}
}

// A weights annotation that does not parse is reported once per version, and the
// endpoints keep weight 1.
func TestTrackerReportsBadWeightsOnce(t *testing.T) {
	var reports []string
	tr := NewTracker(Options{Reject: func(object string, err error) { reports = append(reports, object+": "+err.Error()) }})
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"))
	es.Annotations = map[string]string{AnnotationWeights: "10.1.0.1=x"}
	tr.UpsertEndpointSlice(es)
	snap, _ := tr.Snapshot()
	tr.UpsertService(testService("ns", "web", "10.0.0.2")) // rebuilds the Service
	tr.Snapshot()
	if len(reports) != 1 {
		t.Fatalf("reports %q, want one", reports)
	}
	if eps := snap.EndpointsOf(portName("ns", "web", "http")); len(eps) != 1 || eps[0].Weight != 1 {
		t.Fatalf("endpoints %+v", eps)
	}
}

// A converted Service's ServicePorts are the ones its snapshots hold, and it is
// an informer object like a Slice.
func TestTrackerSharesConvertedServicePorts(t *testing.T) {
	tr, _ := newTestTracker(t, "node-a")
	svc := tr.ConvertService(testService("ns", "web", "10.0.0.1"))
	tr.UpsertConvertedService(svc)
	snap, _ := tr.Snapshot()
	n := portName("ns", "web", "http")
	if sp := snap.Service(n); sp == nil || len(svc.ports) != 1 || sp != svc.ports[0] {
		t.Fatalf("snapshot ServicePort %p, converted %v: want the same pointer", sp, svc.ports)
	}
	if key, err := cache.MetaNamespaceKeyFunc(svc); err != nil || key != "ns/web" {
		t.Fatalf("key %q, %v", key, err)
	}
	if c := svc.DeepCopyObject().(*Service); c == svc || !reflect.DeepEqual(c, svc) {
		t.Fatal("DeepCopyObject")
	}
	other := testService("ns", "web", "10.0.0.1", withLabel(LabelServiceProxyName, "x"))
	if !tr.ConvertService(other).Foreign {
		t.Error("another proxy's Service is not Foreign")
	}
	// An invalid version keeps the last good ports serving.
	bad := testService("ns", "web", "10.0.0.1")
	bad.Spec.ClusterIPs = []string{"not-an-ip"}
	tr.UpsertService(bad)
	snap, _ = tr.Snapshot()
	if sp := snap.Service(n); sp != svc.ports[0] {
		t.Fatalf("after an invalid update: %v, want the last good ServicePort", sp)
	}
}

// Endpoints are the bulk of a large cluster's state (500,000 at 100,000 Services
// x 5): keep the struct at 80 bytes (it was 120 with two hint slices inline).
func TestEndpointStaysSmall(t *testing.T) {
	if size := unsafe.Sizeof(Endpoint{}); size > 80 {
		t.Fatalf("state.Endpoint is %d bytes, want at most 80", size)
	}
}
