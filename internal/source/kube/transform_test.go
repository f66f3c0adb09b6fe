package kube

import (
	"reflect"
	"testing"
	"unsafe"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kproxy.dev/kproxy/internal/state"
)

func ptr[T any](v T) *T { return &v }

// fullService sets every field state/convert.go reads, plus what the transform drops.
func fullService() *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web",
			Labels:     map[string]string{"app": "web"},
			Finalizers: []string{"service.kubernetes.io/load-balancer-cleanup"},
			Annotations: map[string]string{
				state.AnnotationScheduler:                          "mh",
				state.AnnotationSchedulerFlags:                     "mh-port,mh-fallback",
				"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`,
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10", "fd00::10"},
			Selector: map[string]string{"app": "web"},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, NodePort: 30080, Protocol: v1.ProtocolTCP},
				{Name: "dns", Port: 53, NodePort: 30053, Protocol: v1.ProtocolUDP}},
			ExternalIPs:              []string{"192.0.2.7"},
			LoadBalancerSourceRanges: []string{"203.0.113.0/24"},
			ExternalTrafficPolicy:    v1.ServiceExternalTrafficPolicyLocal,
			InternalTrafficPolicy:    ptr(v1.ServiceInternalTrafficPolicyLocal),
			HealthCheckNodePort:      31000,
			SessionAffinity:          v1.ServiceAffinityClientIP,
			SessionAffinityConfig:    &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr(int32(600))}},
		},
		Status: v1.ServiceStatus{
			LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
				{IP: "198.51.100.7", Hostname: "lb.example", IPMode: ptr(v1.LoadBalancerIPModeVIP),
					Ports: []v1.PortStatus{{Port: 80, Protocol: v1.ProtocolTCP}}},
				{IP: "198.51.100.8", IPMode: ptr(v1.LoadBalancerIPModeProxy)},
				{Hostname: "only-a-name.example"},
			}},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}},
		},
	}
}

// fullSlice sets every endpoint field convert.go reads, plus what the transform drops.
func fullSlice() *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-abc",
			Labels:       map[string]string{discovery.LabelServiceName: "web", discovery.LabelManagedBy: "endpointslice-controller"},
			GenerateName: "web-",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: "0f2c5a3e-1d2b-4c5d-9e8f-0123456789ab",
				Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
			Annotations: map[string]string{
				state.TriggerTimeAnnotation: "2026-12-06T19:00:00Z",
				state.AnnotationWeights:     "10.244.1.1=3,10.244.2.1=1",
				"example.com/other":         "dropped",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
		},
		AddressType: discovery.AddressTypeIPv4,
		Endpoints: []discovery.Endpoint{
			{Addresses: []string{"10.244.1.1"}, NodeName: ptr("node-a"), Zone: ptr("z1"), Hostname: ptr("web-0"),
				Conditions:         discovery.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
				Hints:              &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "z1"}}, ForNodes: []discovery.ForNode{{Name: "node-a"}}},
				TargetRef:          &v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-0", UID: "u1"},
				DeprecatedTopology: map[string]string{"kubernetes.io/hostname": "node-a"}},
			{Addresses: []string{"10.244.2.1"}, NodeName: ptr("node-b"), Zone: ptr("z2"),
				Conditions: discovery.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)},
				Hints:      &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "z2"}}},
				TargetRef:  &v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-1"}},
		},
		Ports: []discovery.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(v1.ProtocolTCP)},
			{Name: ptr("dns"), Port: ptr(int32(5353)), Protocol: ptr(v1.ProtocolUDP)}},
	}
}

func fullNode() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{v1.LabelTopologyZone: "z1"},
			Annotations:   map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: "ToBeDeletedByClusterAutoscaler", Effect: v1.TaintEffectNoSchedule}}},
		Status: v1.NodeStatus{
			Addresses:  []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.5"}, {Type: v1.NodeExternalIP, Address: "203.0.113.5"}},
			Images:     []v1.ContainerImage{{Names: []string{"registry.example/big:1"}, SizeBytes: 1 << 30}},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
}

// snapshotOf feeds objects through a Tracker, as the daemon does.
func snapshotOf(svc *v1.Service, es *discovery.EndpointSlice, n *v1.Node) *state.Snapshot {
	tr := state.NewTracker(state.Options{NodeName: "node-a"})
	tr.UpsertNode(n)
	tr.UpsertService(svc)
	tr.UpsertEndpointSlice(es)
	snap, _ := tr.Snapshot()
	return snap
}

// portsOf copies a snapshot's ServicePorts and their non-empty endpoint lists into maps.
func portsOf(snap *state.Snapshot) (map[state.ServicePortName]*state.ServicePort, map[state.ServicePortName][]state.Endpoint) {
	ports, eps := map[state.ServicePortName]*state.ServicePort{}, map[state.ServicePortName][]state.Endpoint{}
	for n, sp := range snap.All() {
		ports[n] = sp
		if e := snap.EndpointsOf(n); e != nil {
			eps[n] = e
		}
	}
	return ports, eps
}

// TestTransformKeepsWhatConvertReads converts full objects with and without the
// informer transforms: the ServicePorts, endpoints and node the proxy sees must be
// identical, and what the transforms drop must be gone.
func TestTransformKeepsWhatConvertReads(t *testing.T) {
	svc, es, n := fullService(), fullSlice(), fullNode()
	want := snapshotOf(svc, es, n)
	wantPorts, wantEps := portsOf(want)
	if len(wantPorts) != 2 || len(wantEps) != 2 {
		t.Fatalf("fixture converts to %d ServicePorts / %d endpoint sets, want 2 / 2", len(wantPorts), len(wantEps))
	}
	ts, te, tn := svc.DeepCopy(), es.DeepCopy(), n.DeepCopy()
	for _, c := range []struct {
		f   func(any) (any, error)
		obj any
	}{{transformService, ts}, {transformEndpointSlice, te}, {transformNode, tn}} {
		for range 2 { // idempotent
			if _, err := c.f(c.obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := snapshotOf(ts, te, tn)
	gotPorts, gotEps := portsOf(got)
	if !reflect.DeepEqual(gotPorts, wantPorts) {
		t.Errorf("ServicePorts differ after the transform:\n got %+v\nwant %+v", gotPorts, wantPorts)
	}
	if !reflect.DeepEqual(gotEps, wantEps) {
		t.Errorf("endpoints differ after the transform:\n got %+v\nwant %+v", gotEps, wantEps)
	}
	if !reflect.DeepEqual(got.Node, want.Node) {
		t.Errorf("node differs after the transform:\n got %+v\nwant %+v", got.Node, want.Node)
	}
	if !nodeEligibleInputsKept(n, tn) {
		t.Error("the transform dropped the node's taints or deletion timestamp (daemon/node.go)")
	}
	if ts.ManagedFields != nil || te.ManagedFields != nil || tn.ManagedFields != nil {
		t.Error("managedFields kept")
	}
	if te.OwnerReferences != nil || te.GenerateName != "" || ts.Finalizers != nil {
		t.Errorf("owner references %v, generateName %q or finalizers %v kept", te.OwnerReferences, te.GenerateName, ts.Finalizers)
	}
	if _, ok := ts.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok || len(ts.Annotations) != 2 {
		t.Errorf("Service annotations after the transform: %v, want only kproxy.dev/*", ts.Annotations)
	}
	if len(te.Annotations) != 2 || te.Annotations[state.TriggerTimeAnnotation] == "" {
		t.Errorf("EndpointSlice annotations after the transform: %v, want weights and trigger time", te.Annotations)
	}
	if te.Endpoints[0].TargetRef != nil || len(tn.Status.Images) != 0 || ts.Status.Conditions != nil {
		t.Error("target refs, node images or Service conditions kept")
	}
}

func nodeEligibleInputsKept(a, b *v1.Node) bool {
	return reflect.DeepEqual(a.Spec.Taints, b.Spec.Taints) && reflect.DeepEqual(a.DeletionTimestamp, b.DeletionTimestamp)
}

// TestTransformLeavesOtherObjects passes tombstones and unknown objects through.
func TestTransformLeavesOtherObjects(t *testing.T) {
	for _, f := range []func(any) (any, error){transformService, transformEndpointSlice, transformNode} {
		in := "not an object"
		if out, err := f(in); err != nil || out != in {
			t.Fatalf("transform of a foreign object: %v, %v", out, err)
		}
	}
}

// TestTransformKeepsTheLabelsKproxyReads: other labels go, the ones that decide
// whether kproxy handles an object stay, so the handlers still filter on them.
func TestTransformKeepsTheLabelsKproxyReads(t *testing.T) {
	svc := fullService()
	svc.Labels = map[string]string{"app": "web", "team": "a", state.LabelServiceProxyName: "other"}
	if _, err := transformService(svc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(svc.Labels, map[string]string{state.LabelServiceProxyName: "other"}) {
		t.Errorf("Service labels after the transform: %v", svc.Labels)
	}
	if serviceHandler(state.NewTracker(state.Options{}), nil).keep(svc) {
		t.Error("a Service of another proxy passes the handler after the transform")
	}
	plain := fullService()
	if _, err := transformService(plain); err != nil {
		t.Fatal(err)
	}
	if plain.Labels != nil {
		t.Errorf("Service labels %v, want none", plain.Labels)
	}
	es := fullSlice()
	es.Labels = map[string]string{discovery.LabelServiceName: "web", discovery.LabelManagedBy: "x", "app": "web", v1.IsHeadlessService: ""}
	if _, err := transformEndpointSlice(es); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(es.Labels, map[string]string{discovery.LabelServiceName: "web", v1.IsHeadlessService: ""}) {
		t.Errorf("EndpointSlice labels after the transform: %v", es.Labels)
	}
	if sliceHandler(state.NewTracker(state.Options{}), nil).keep(es) {
		t.Error("a headless Service's slice passes the handler after the transform")
	}
}

// TestTransformSharesNodeAndZoneNames: endpoints of different slices on the same
// node share one NodeName pointer (and Zone), with the same value.
func TestTransformSharesNodeAndZoneNames(t *testing.T) {
	a, b := fullSlice(), fullSlice()
	b.Name = "web-def"
	for _, es := range []*discovery.EndpointSlice{a, b} {
		if _, err := transformEndpointSlice(es); err != nil {
			t.Fatal(err)
		}
	}
	ea, eb := a.Endpoints[0], b.Endpoints[0]
	if ea.NodeName == nil || ea.NodeName != eb.NodeName || *ea.NodeName != *fullSlice().Endpoints[0].NodeName {
		t.Errorf("node names: %p %p, want one shared pointer", ea.NodeName, eb.NodeName)
	}
	if ea.Zone == nil || ea.Zone != eb.Zone || *ea.Zone != *fullSlice().Endpoints[0].Zone {
		t.Errorf("zones: %p %p, want one shared pointer", ea.Zone, eb.Zone)
	}
}

// TestTransformForATrackerCachesItsSlice: with the Tracker as handler, the
// informer caches the state.Slice the Tracker keeps (one copy of the endpoints),
// converted from the trimmed object to the same endpoints as the whole object,
// with the interned node name; the handler filters and delivers it.
func TestTransformForATrackerCachesItsSlice(t *testing.T) {
	svc, es, n := fullService(), fullSlice(), fullNode()
	_, wantEps := portsOf(snapshotOf(svc, es, n))
	tr := state.NewTracker(state.Options{NodeName: "node-a"})
	transform := transformSliceFor(tr)
	out, err := transform(es.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := out.(*state.Slice)
	if !ok {
		t.Fatalf("transform gave %T, want *state.Slice", out)
	}
	if again, err := transform(s); err != nil || again != s {
		t.Fatalf("transform of a converted slice: %v, %v", again, err)
	}
	h := sliceHandler(tr, nil)
	if !h.keep(s) {
		t.Fatal("the handler drops the converted slice")
	}
	tr.UpsertNode(n)
	tr.UpsertService(svc)
	h.upsert(s)
	snap, _ := tr.Snapshot()
	if _, gotEps := portsOf(snap); !reflect.DeepEqual(gotEps, wantEps) {
		t.Errorf("endpoints through the converting transform:\n got %+v\nwant %+v", gotEps, wantEps)
	}
	for _, p := range []string{"http", "dns"} {
		for _, e := range s.Endpoints(p) {
			if e.NodeName == "" || unsafe.StringData(e.NodeName) != unsafe.StringData(*places.intern(ptr(e.NodeName))) {
				t.Errorf("port %s endpoint %s: node name not the interned string", p, e)
			}
		}
	}
	headless := fullSlice()
	headless.Labels[v1.IsHeadlessService] = ""
	hs, _ := transform(headless)
	if h.keep(hs) {
		t.Error("a headless Service's converted slice passes the handler")
	}
	// Another handler (tests' recorders) gets the trimmed EndpointSlice.
	if out, _ := transformSliceFor(nil)(fullSlice()); reflect.TypeOf(out) != reflect.TypeOf(&discovery.EndpointSlice{}) {
		t.Errorf("without a converting handler the transform gave %T", out)
	}
}

// TestTransformForATrackerCachesItsService: with the Tracker as handler, the
// informer caches the state.Service whose ServicePorts the snapshots share,
// converted to the same ServicePorts as the whole object.
func TestTransformForATrackerCachesItsService(t *testing.T) {
	svc, es, n := fullService(), fullSlice(), fullNode()
	wantPorts, _ := portsOf(snapshotOf(svc, es, n))
	tr := state.NewTracker(state.Options{NodeName: "node-a"})
	transform := transformServiceFor(tr)
	out, err := transform(svc.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := out.(*state.Service)
	if !ok {
		t.Fatalf("transform gave %T, want *state.Service", out)
	}
	if again, err := transform(s); err != nil || again != s {
		t.Fatalf("transform of a converted Service: %v, %v", again, err)
	}
	h := serviceHandler(tr, nil)
	if !h.keep(s) {
		t.Fatal("the handler drops the converted Service")
	}
	tr.UpsertNode(n)
	h.upsert(s)
	tr.UpsertEndpointSlice(es)
	snap, _ := tr.Snapshot()
	if gotPorts, _ := portsOf(snap); !reflect.DeepEqual(gotPorts, wantPorts) {
		t.Errorf("ServicePorts through the converting transform:\n got %+v\nwant %+v", gotPorts, wantPorts)
	}
	other := fullService()
	other.Labels[state.LabelServiceProxyName] = "x"
	if os, _ := transform(other); h.keep(os) {
		t.Error("another proxy's converted Service passes the handler")
	}
	if out, _ := transformServiceFor(nil)(fullService()); reflect.TypeOf(out) != reflect.TypeOf(&v1.Service{}) {
		t.Errorf("without a converting handler the transform gave %T", out)
	}
}
