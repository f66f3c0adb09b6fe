package state

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrackerRepeatedUpdatesCollapse(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	onChange := 0
	tr.opts.OnChange = func() { onChange++ }
	svc := testService("ns", "web", "10.0.0.1")
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 8080}, ready("10.1.0.1"))

	tr.UpsertService(svc)
	tr.UpsertService(svc.DeepCopy())
	tr.UpsertEndpointSlice(es)
	tr.UpsertEndpointSlice(es.DeepCopy())
	if s, e := tr.Pending(); s != 1 || e != 1 || onChange != 2 {
		t.Fatalf("pending %d/%d onChange %d, want 1/1 2: identical repeats were counted", s, e, onChange)
	}
	snap, cs := tr.Snapshot()
	if got := changed(cs); !reflect.DeepEqual(got, []string{"ns/web:http"}) {
		t.Fatalf("changed %v", got)
	}
	if eps := endpointStrings(snap.EndpointsOf(portName("ns", "web", "http"))); !reflect.DeepEqual(eps, []string{"10.1.0.1:8080"}) {
		t.Fatalf("endpoints %v", eps)
	}

	// The same objects again, even with other metadata, produce no change.
	again := svc.DeepCopy()
	again.ResourceVersion = "42"
	tr.UpsertService(again)
	tr.UpsertEndpointSlice(es.DeepCopy())
	_, cs = tr.Snapshot()
	if !cs.Empty() || cs.ServiceEvents != 0 || cs.EndpointEvents != 0 || onChange != 2 {
		t.Fatalf("identical updates produced %+v (onChange %d)", cs, onChange)
	}
}

func TestTrackerChangedEndpointReportsOnlyItsPort(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withPorts(
		v1.ServicePort{Name: "http", Port: 80},
		v1.ServicePort{Name: "https", Port: 443},
	)))
	tr.UpsertService(testService("ns", "api", "10.0.0.2"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-http", "web", map[string]int32{"http": 8080}, ready("10.1.0.1")))
	tr.UpsertEndpointSlice(testSlice("ns", "web-https", "web", map[string]int32{"https": 8443}, ready("10.1.0.1")))
	tr.UpsertEndpointSlice(testSlice("ns", "api-1", "api", map[string]int32{"http": 8080}, ready("10.1.0.9")))
	_, cs := tr.Snapshot()
	if n := len(cs.Ports); n != 3 {
		t.Fatalf("first snapshot changed %v", changed(cs))
	}

	tr.UpsertEndpointSlice(testSlice("ns", "web-https", "web", map[string]int32{"https": 8443}, ready("10.1.0.2")))
	snap, cs := tr.Snapshot()
	if got := changed(cs); !reflect.DeepEqual(got, []string{"ns/web:https"}) {
		t.Fatalf("changed %v, want only ns/web:https", got)
	}
	if cs.EndpointEvents != 1 || cs.ServiceEvents != 0 {
		t.Fatalf("events %d/%d", cs.ServiceEvents, cs.EndpointEvents)
	}
	if eps := endpointStrings(snap.EndpointsOf(portName("ns", "web", "https"))); !reflect.DeepEqual(eps, []string{"10.1.0.2:8443"}) {
		t.Fatalf("endpoints %v", eps)
	}
}

func TestTrackerSnapshotsAreImmutable(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 8080}, ready("10.1.0.1")))
	first, _ := tr.Snapshot()
	tr.UpsertEndpointSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 8080}, ready("10.1.0.2")))
	tr.UpsertService(testService("ns", "other", "10.0.0.3"))
	second, _ := tr.Snapshot()
	n := portName("ns", "web", "http")
	if got := endpointStrings(first.EndpointsOf(n)); !reflect.DeepEqual(got, []string{"10.1.0.1:8080"}) {
		t.Fatalf("first snapshot changed under us: %v", got)
	}
	if first.Len() != 1 || second.Len() != 2 || second.Generation != first.Generation+1 {
		t.Fatalf("services %d/%d generations %d/%d", first.Len(), second.Len(), first.Generation, second.Generation)
	}
	if tr.Last() != second {
		t.Fatal("Last is not the latest snapshot")
	}
}

func TestTrackerDeleteServiceReportsItsPorts(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withPorts(
		v1.ServicePort{Name: "http", Port: 80},
		v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
	)))
	tr.UpsertService(testService("ns", "api", "10.0.0.2"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 8080, "dns": 53}, ready("10.1.0.1")))
	tr.Snapshot()

	tr.DeleteService("ns", "web")
	tr.DeleteService("ns", "never-existed")
	snap, cs := tr.Snapshot()
	if got := changed(cs); !reflect.DeepEqual(got, []string{"ns/web:dns", "ns/web:http"}) {
		t.Fatalf("changed %v", got)
	}
	if cs.ServiceEvents != 1 {
		t.Fatalf("service events %d (deleting an unknown Service is no event)", cs.ServiceEvents)
	}
	for n := range snap.All() {
		if n.Name == "web" {
			t.Fatalf("%v still in snapshot", n)
		}
	}
	if snap.Len() != 1 || snap.EndpointsOf(portName("ns", "web", "http")) != nil {
		t.Fatalf("ports of the deleted Service remain: %v", snap.SortedNames())
	}
	// The slice alone does not bring the Service back.
	tr.UpsertEndpointSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 8081}, ready("10.1.0.1")))
	if snap, cs = tr.Snapshot(); snap.Len() != 1 || len(cs.Ports) != 0 {
		t.Fatalf("orphan slice: services %v changed %v", snap.SortedNames(), changed(cs))
	}
}

func TestTrackerRemovedPortIsReported(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withPorts(
		v1.ServicePort{Name: "http", Port: 80},
		v1.ServicePort{Name: "https", Port: 443},
	)))
	tr.Snapshot()
	tr.UpsertService(testService("ns", "web", "10.0.0.1", withPorts(v1.ServicePort{Name: "http", Port: 80})))
	snap, cs := tr.Snapshot()
	if got := changed(cs); !reflect.DeepEqual(got, []string{"ns/web:https"}) {
		t.Fatalf("changed %v", got)
	}
	if snap.Service(portName("ns", "web", "https")) != nil {
		t.Fatal("removed port still in snapshot")
	}
}

func TestTrackerSkipsUnproxyableServices(t *testing.T) {
	cases := map[string]*v1.Service{
		"headless":      testService("ns", "s", v1.ClusterIPNone),
		"no cluster IP": testService("ns", "s", ""),
		"ExternalName": testService("ns", "s", "", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeExternalName
			s.Spec.ExternalName = "example.com"
		}),
		"service-proxy-name": testService("ns", "s", "10.0.0.1", withLabel(LabelServiceProxyName, "other")),
	}
	for name, svc := range cases {
		t.Run(name, func(t *testing.T) {
			tr, rejects := newTestTracker(t, "")
			tr.UpsertService(svc)
			tr.UpsertEndpointSlice(testSlice("ns", "s-1", "s", map[string]int32{"http": 80}, ready("10.1.0.1")))
			snap, cs := tr.Snapshot()
			if snap.Len() != 0 || len(cs.Ports) != 0 || len(*rejects) != 0 {
				t.Fatalf("services %v changed %v rejects %v", snap.SortedNames(), changed(cs), *rejects)
			}
		})
	}
	// A proxied Service that becomes unproxyable goes away, reported as changed.
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "s", "10.0.0.1"))
	tr.Snapshot()
	tr.UpsertService(testService("ns", "s", "10.0.0.1", withLabel(LabelServiceProxyName, "other")))
	snap, cs := tr.Snapshot()
	if snap.Len() != 0 || !reflect.DeepEqual(changed(cs), []string{"ns/s:http"}) {
		t.Fatalf("claimed service: services %v changed %v", snap.SortedNames(), changed(cs))
	}
}

func TestTrackerSchedulerAnnotation(t *testing.T) {
	tr, rejects := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "good", "10.0.0.1",
		withAnnotation(AnnotationScheduler, " wrr "), withAnnotation(AnnotationSchedulerFlags, "a, b,,")))
	tr.UpsertService(testService("ns", "bad", "10.0.0.2", withAnnotation(AnnotationScheduler, "magic")))
	snap, _ := tr.Snapshot()
	good := snap.Service(portName("ns", "good", "http"))
	if good.Scheduler != "wrr" || !reflect.DeepEqual(good.SchedulerFlags, []string{"a", "b"}) {
		t.Fatalf("good: scheduler %q flags %q", good.Scheduler, good.SchedulerFlags)
	}
	bad := snap.Service(portName("ns", "bad", "http"))
	if bad == nil || bad.Scheduler != "" || bad.SchedulerFlags != nil {
		t.Fatalf("bad: %+v, want served with the default scheduler", bad)
	}
	if len(*rejects) != 1 || (*rejects)[0].object != "Service ns/bad" ||
		!strings.Contains((*rejects)[0].err, "metadata.annotations[kproxy.dev/scheduler]") ||
		!strings.Contains((*rejects)[0].err, `unknown scheduler "magic"`) {
		t.Fatalf("rejects %+v", *rejects)
	}
}

func TestTrackerWeightsAnnotation(t *testing.T) {
	tr, rejects := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"), ready("10.1.0.2"), ready("10.1.0.3"))
	es.Annotations = map[string]string{AnnotationWeights: "10.1.0.1=5, 10.1.0.2=0"}
	tr.UpsertEndpointSlice(es)
	snap, _ := tr.Snapshot()
	got := map[string]int{}
	for _, e := range snap.EndpointsOf(portName("ns", "web", "http")) {
		got[e.IP.String()] = e.Weight
	}
	if want := map[string]int{"10.1.0.1": 5, "10.1.0.2": 0, "10.1.0.3": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
	if len(*rejects) != 0 {
		t.Fatalf("rejects %v", *rejects)
	}

	bad := es.DeepCopy()
	bad.Annotations[AnnotationWeights] = "10.1.0.1=lots"
	tr.UpsertEndpointSlice(bad)
	snap, _ = tr.Snapshot()
	for _, e := range snap.EndpointsOf(portName("ns", "web", "http")) {
		if e.Weight != 1 {
			t.Fatalf("bad weights: %v has weight %d, want the default 1", e, e.Weight)
		}
	}
	if len(*rejects) != 1 || (*rejects)[0].object != "EndpointSlice ns/web-1" ||
		!strings.Contains((*rejects)[0].err, "metadata.annotations[kproxy.dev/weights]") {
		t.Fatalf("rejects %+v", *rejects)
	}
}

func TestParseWeights(t *testing.T) {
	cases := []struct {
		in      string
		want    map[string]int
		wantErr string
	}{
		{"", map[string]int{}, ""},
		{"10.0.0.1=3", map[string]int{"10.0.0.1": 3}, ""},
		{" 10.0.0.1 = 3 , fd00::1=0,", map[string]int{"10.0.0.1": 3, "fd00::1": 0}, ""},
		{"10.0.0.1", nil, "want ip=weight"},
		{"10.0.0=1", nil, "invalid address"},
		{"10.0.0.1=-1", nil, "0..65535"},
		{"10.0.0.1=65536", nil, "0..65535"},
	}
	for _, c := range cases {
		got, err := ParseWeights(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		m := map[string]int{}
		for ip, w := range got {
			m[ip.String()] = w
		}
		if !reflect.DeepEqual(m, c.want) {
			t.Errorf("%q: %v, want %v", c.in, m, c.want)
		}
	}
}

func TestTrackerInvalidServiceKeepsLastGood(t *testing.T) {
	tr, rejects := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	tr.Snapshot()
	bad := testService("ns", "web", "10.0.0.1", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"1.2.3"} })
	tr.UpsertService(bad)
	snap, cs := tr.Snapshot()
	if sp := snap.Service(portName("ns", "web", "http")); sp == nil || len(cs.Ports) != 0 {
		t.Fatalf("last good port lost: %v changed %v", sp, changed(cs))
	}
	if len(*rejects) != 1 || !strings.Contains((*rejects)[0].err, "spec.externalIPs[0]") {
		t.Fatalf("rejects %+v", *rejects)
	}
}

func TestTrackerNode(t *testing.T) {
	tr, _ := newTestTracker(t, "node-a")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-1", "web", map[string]int32{"http": 80},
		testEP{ip: "10.1.0.1", node: "node-a"}, testEP{ip: "10.1.0.2", node: "node-b"}, ready("10.1.0.3")))
	snap, cs := tr.Snapshot()
	local := map[string]bool{}
	for _, e := range snap.EndpointsOf(portName("ns", "web", "http")) {
		local[e.IP.String()] = e.IsLocal
	}
	if want := map[string]bool{"10.1.0.1": true, "10.1.0.2": false, "10.1.0.3": false}; !reflect.DeepEqual(local, want) {
		t.Fatalf("IsLocal %v, want %v", local, want)
	}
	if cs.NodeChanged || snap.Node.Name != "node-a" {
		t.Fatalf("node %+v changed %v before any Node event", snap.Node, cs.NodeChanged)
	}

	other := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}
	tr.UpsertNode(other)
	if _, cs = tr.Snapshot(); cs.NodeChanged {
		t.Fatal("another node's object changed this node")
	}

	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{v1.LabelTopologyZone: "zone-a"}},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
			{Type: v1.NodeHostName, Address: "node-a"},
			{Type: v1.NodeInternalIP, Address: "192.0.2.1"},
			{Type: v1.NodeExternalIP, Address: "198.51.100.1"},
		}},
	}
	tr.UpsertNode(n)
	snap, cs = tr.Snapshot()
	if !cs.NodeChanged || snap.Node.Zone != "zone-a" || len(snap.Node.Addresses) != 2 || snap.Node.Addresses[0] != mustAddr("192.0.2.1") {
		t.Fatalf("node %+v changed %v", snap.Node, cs.NodeChanged)
	}
	// Same node again (other status fields): nothing changes.
	n2 := n.DeepCopy()
	n2.Status.Phase = v1.NodeRunning
	tr.UpsertNode(n2)
	if _, cs = tr.Snapshot(); !cs.Empty() {
		t.Fatalf("unchanged node produced %+v", cs)
	}
	tr.DeleteNode("node-a")
	snap, cs = tr.Snapshot()
	if !cs.NodeChanged || snap.Node.Zone != "" || snap.Node.Name != "node-a" {
		t.Fatalf("after delete: node %+v changed %v", snap.Node, cs.NodeChanged)
	}
}

func TestTrackerMergesSlices(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	ports := map[string]int32{"http": 80}
	tr.UpsertEndpointSlice(testSlice("ns", "web-b", "web", ports, ready("10.1.0.2"), testEP{ip: "10.1.0.1", notReady: true}))
	tr.UpsertEndpointSlice(testSlice("ns", "web-a", "web", ports, ready("10.1.0.1")))
	snap, _ := tr.Snapshot()
	eps := snap.EndpointsOf(portName("ns", "web", "http"))
	if got := endpointStrings(eps); !reflect.DeepEqual(got, []string{"10.1.0.1:80", "10.1.0.2:80"}) {
		t.Fatalf("merged %v, want deduplicated and sorted", got)
	}
	if !eps[0].Ready {
		t.Fatal("duplicate endpoint: the ready copy must win")
	}
	// Moving a slice to another Service moves its endpoints.
	tr.UpsertService(testService("ns", "api", "10.0.0.2"))
	tr.UpsertEndpointSlice(testSlice("ns", "web-b", "api", ports, ready("10.1.0.2")))
	snap, cs := tr.Snapshot()
	if got := changed(cs); !reflect.DeepEqual(got, []string{"ns/api:http", "ns/web:http"}) {
		t.Fatalf("changed %v", got)
	}
	if got := endpointStrings(snap.EndpointsOf(portName("ns", "web", "http"))); !reflect.DeepEqual(got, []string{"10.1.0.1:80"}) {
		t.Fatalf("web %v", got)
	}
	tr.DeleteEndpointSlice("ns", "web-a")
	snap, _ = tr.Snapshot()
	if got := snap.EndpointsOf(portName("ns", "web", "http")); len(got) != 0 {
		t.Fatalf("web after delete %v", got)
	}
}

func TestTrackerTriggerTimes(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	es := testSlice("ns", "web-1", "web", map[string]int32{"http": 80}, ready("10.1.0.1"))
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	es.Annotations = map[string]string{TriggerTimeAnnotation: when.Format(time.RFC3339)}
	tr.UpsertEndpointSlice(es)
	_, cs := tr.Snapshot()
	if len(cs.TriggerTimes) != 1 || !cs.TriggerTimes[0].Equal(when) {
		t.Fatalf("trigger times %v", cs.TriggerTimes)
	}
	if _, cs = tr.Snapshot(); len(cs.TriggerTimes) != 0 {
		t.Fatalf("trigger times not reset: %v", cs.TriggerTimes)
	}
}

func TestServicePortsConversion(t *testing.T) {
	timeout := int32(60)
	local := v1.ServiceInternalTrafficPolicyLocal
	svc := testService("ns", "web", "10.0.0.1", func(s *v1.Service) {
		s.Spec.ClusterIPs = []string{"10.0.0.1", "fd00::1"}
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports = []v1.ServicePort{{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, NodePort: 30053}, {Name: "web", Port: 80}}
		s.Spec.ExternalIPs = []string{"192.0.2.5"}
		s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.7/8"}
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.InternalTrafficPolicy = &local
		s.Spec.HealthCheckNodePort = 32000
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &timeout}}
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.51.100.7"}, {Hostname: "lb.example.com"}}
	})
	ports, err := ServicePorts(svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 {
		t.Fatalf("ports %v", ports)
	}
	dns, web := ports[0], ports[1]
	if dns.Name != (ServicePortName{"ns", "web", "dns", v1.ProtocolUDP}) || dns.NodePort != 30053 || dns.Port != 53 {
		t.Fatalf("dns %+v", dns)
	}
	if web.Protocol != v1.ProtocolTCP {
		t.Fatalf("default protocol %q", web.Protocol)
	}
	if len(web.ClusterIPs) != 2 || web.ClusterIPs[1] != mustAddr("fd00::1") || web.ExternalIPs[0] != mustAddr("192.0.2.5") ||
		len(web.LoadBalancerIPs) != 1 || web.LoadBalancerSourceRanges[0].String() != "10.0.0.0/8" ||
		!web.ExternalPolicyLocal || !web.InternalPolicyLocal || web.HealthCheckNodePort != 32000 || web.AffinityTimeout != time.Minute {
		t.Fatalf("web %+v", web)
	}
	svc.Spec.SessionAffinityConfig = nil
	ports, _ = ServicePorts(svc)
	if ports[0].AffinityTimeout != DefaultAffinityTimeout {
		t.Fatalf("default affinity timeout %v", ports[0].AffinityTimeout)
	}
	for field, mutate := range map[string]func(*v1.Service){
		"spec.clusterIPs[1]":                   func(s *v1.Service) { s.Spec.ClusterIPs[1] = "nope" },
		"spec.loadBalancerSourceRanges[0]":     func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges[0] = "10.0.0.0/99" },
		"status.loadBalancer.ingress[0].ip":    func(s *v1.Service) { s.Status.LoadBalancer.Ingress[0].IP = "x" },
		"spec.externalIPs[0]: invalid address": func(s *v1.Service) { s.Spec.ExternalIPs[0] = "1.2.3" },
	} {
		bad := svc.DeepCopy()
		mutate(bad)
		if _, err := ServicePorts(bad); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err %v", field, err)
		}
	}
}

func TestSliceEndpointConditions(t *testing.T) {
	f, tr := false, true
	node, zone := "node-a", "zone-a"
	port := int32(80)
	es := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "s", Labels: map[string]string{discovery.LabelServiceName: "svc"}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Port: &port}, {Name: &node}}, // a port without a number is skipped
		Endpoints: []discovery.Endpoint{
			{Addresses: []string{"10.0.0.1"}}, // no conditions: ready and serving
			{Addresses: []string{"10.0.0.2"}, Conditions: discovery.EndpointConditions{Ready: &f, Serving: &tr, Terminating: &tr}, NodeName: &node, Zone: &zone},
			{Addresses: []string{"not-an-ip"}},
			{Addresses: nil},
		},
	}
	got := sliceEndpoints(es, nil, "node-a")
	eps := got[""]
	if len(got) != 1 || len(eps) != 2 {
		t.Fatalf("endpoints %+v", got)
	}
	if e := eps[0]; !e.Ready || !e.Serving || e.Terminating || e.IsLocal || e.Weight != 1 {
		t.Fatalf("default conditions %+v", e)
	}
	if e := eps[1]; e.Ready || !e.Serving || !e.Terminating || !e.IsLocal || e.Zone != "zone-a" {
		t.Fatalf("terminating endpoint %+v", e)
	}
}

func TestLoadBalancerIPModeProxyIsNotCaptured(t *testing.T) {
	vip, proxy := v1.LoadBalancerIPModeVIP, v1.LoadBalancerIPModeProxy
	svc := testService("ns", "lb", "10.0.0.1", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{
			{IP: "192.0.2.1"}, {IP: "192.0.2.2", IPMode: &vip}, {IP: "192.0.2.3", IPMode: &proxy},
		}
	})
	ports, err := ServicePorts(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{mustAddr("192.0.2.1"), mustAddr("192.0.2.2")}
	if !reflect.DeepEqual(ports[0].LoadBalancerIPs, want) {
		t.Fatalf("LoadBalancerIPs %v, want %v (ipMode Proxy left to the load balancer)", ports[0].LoadBalancerIPs, want)
	}
}

// TestServingUnsetIsServing: kube-proxy treats an unset serving condition as
// serving, so a Service whose only endpoints are terminating with serving unset is
// still served through the terminating fallback (issue 12, item 7).
func TestServingUnsetIsServing(t *testing.T) {
	f, tr := false, true
	port := int32(80)
	es := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "s", Labels: map[string]string{discovery.LabelServiceName: "svc"}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Port: &port}},
		Endpoints: []discovery.Endpoint{
			{Addresses: []string{"10.0.0.1"}, Conditions: discovery.EndpointConditions{Ready: &f, Terminating: &tr}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discovery.EndpointConditions{Ready: &f, Serving: &f, Terminating: &tr}},
		},
	}
	eps := sliceEndpoints(es, nil, "node-a")[""]
	if len(eps) != 2 || !eps[0].Serving || eps[1].Serving {
		t.Fatalf("serving = %v, %v; want unset -> true, false -> false", eps[0].Serving, eps[1].Serving)
	}
	n := ServicePortName{Namespace: "ns", Name: "svc", Protocol: v1.ProtocolTCP}
	snap := &Snapshot{
		ServiceMap:  map[ServicePortName]*ServicePort{n: {Name: n, Protocol: v1.ProtocolTCP, Port: 80, ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")}}},
		EndpointMap: map[ServicePortName][]Endpoint{n: eps},
	}
	cat := snap.Categorize(n)
	if len(cat.Cluster) != 1 || cat.Cluster[0].IP != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("cluster endpoints %+v, want the terminating endpoint with serving unset", cat.Cluster)
	}
}

// TestExternalIPsGate: with AllowServiceExternalIPs off, no ServicePort carries
// externalIPs, so no mode programs them; on (the default) they pass through.
func TestExternalIPsGate(t *testing.T) {
	if !ExternalIPsAllowed(nil) || !ExternalIPsAllowed(map[string]bool{"Other": false}) {
		t.Fatal("AllowServiceExternalIPs defaults to true")
	}
	if ExternalIPsAllowed(map[string]bool{FeatureAllowServiceExternalIPs: false}) {
		t.Fatal("gate set false reads as allowed")
	}
	svc := testService("ns", "web", "10.96.0.1", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"192.0.2.1"} })
	for _, disable := range []bool{false, true} {
		tr := NewTracker(Options{NodeName: "node-a", DisableExternalIPs: disable})
		tr.UpsertService(svc)
		snap, _ := tr.Snapshot()
		if snap.Len() != 1 {
			t.Fatalf("services %v", snap.SortedNames())
		}
		for _, sp := range snap.All() {
			if got := len(sp.ExternalIPs); (got == 0) != disable {
				t.Fatalf("DisableExternalIPs=%v: externalIPs %v", disable, sp.ExternalIPs)
			}
		}
	}
}

func TestTrackerSliceIndexFollowsUpdatesAndDeletes(t *testing.T) {
	tr, _ := newTestTracker(t, "")
	tr.UpsertService(testService("ns", "web", "10.0.0.1"))
	ports := map[string]int32{"http": 80}
	for i, name := range []string{"web-a", "web-b", "web-c"} {
		tr.UpsertEndpointSlice(testSlice("ns", name, "web", ports, ready(fmt.Sprintf("10.1.0.%d", i+1))))
	}
	// An update replaces the slice's endpoints; it must not be indexed twice.
	tr.UpsertEndpointSlice(testSlice("ns", "web-b", "web", ports, ready("10.1.0.9")))
	tr.DeleteEndpointSlice("ns", "web-a")
	snap, _ := tr.Snapshot()
	if got := endpointStrings(snap.EndpointsOf(portName("ns", "web", "http"))); !reflect.DeepEqual(got, []string{"10.1.0.3:80", "10.1.0.9:80"}) {
		t.Fatalf("endpoints %v, want web-b's new one and web-c's", got)
	}
	if keys := tr.slicesBySvc["ns/web"]; len(keys) != 2 {
		t.Fatalf("index %v, want web-b and web-c once each", keys)
	}
	tr.DeleteEndpointSlice("ns", "web-b")
	tr.DeleteEndpointSlice("ns", "web-c")
	if _, ok := tr.slicesBySvc["ns/web"]; ok {
		t.Fatal("a Service without slices is still indexed")
	}
}

// TestDedupEndpointsPrefersTheFirstReadyElseTheLast pins the merge of one address in
// several slices (a pod moving between slices).
func TestDedupEndpointsPrefersTheFirstReadyElseTheLast(t *testing.T) {
	ip := netip.MustParseAddr("10.1.0.1")
	e := func(zone string, ready bool) Endpoint { return Endpoint{IP: ip, Port: 80, Ready: ready, Zone: zone} }
	other := Endpoint{IP: netip.MustParseAddr("10.1.0.0"), Port: 80, Ready: true}
	for _, c := range []struct {
		in   []Endpoint
		want string
	}{
		{[]Endpoint{e("a", false), e("b", true), e("c", true)}, "b"},
		{[]Endpoint{e("a", true), e("b", false)}, "a"},
		{[]Endpoint{e("a", false), e("b", false)}, "b"},
	} {
		got := dedupEndpoints(append([]Endpoint{}, append(c.in, other)...))
		if len(got) != 2 || !reflect.DeepEqual(got[0], other) || got[1].Zone != c.want || len(got) != cap(got) {
			t.Errorf("%v: got %v (cap %d), want 10.1.0.0 then the copy from %s, sized exactly", c.in, got, cap(got), c.want)
		}
	}
}
