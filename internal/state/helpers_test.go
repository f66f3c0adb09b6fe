package state

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// svcOpt and epOpt tweak test objects.
type svcOpt func(*v1.Service)

func testService(ns, name, clusterIP string, opts ...svcOpt) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			ClusterIP: clusterIP,
			Ports:     []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

func withPorts(ports ...v1.ServicePort) svcOpt {
	return func(s *v1.Service) { s.Spec.Ports = ports }
}

func withAnnotation(k, v string) svcOpt {
	return func(s *v1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func withLabel(k, v string) svcOpt {
	return func(s *v1.Service) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
}

type testEP struct {
	ip                          string
	node                        string
	notReady, serving, terminat bool
	zoneHints                   []string
}

func ready(ip string) testEP { return testEP{ip: ip} }

func testSlice(ns, name, svc string, ports map[string]int32, eps ...testEP) *discovery.EndpointSlice {
	es := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discovery.LabelServiceName: svc}},
		AddressType: discovery.AddressTypeIPv4,
	}
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		n, p := n, ports[n]
		es.Ports = append(es.Ports, discovery.EndpointPort{Name: &n, Port: &p})
	}
	for _, e := range eps {
		r, s, t := !e.notReady, e.serving || !e.notReady, e.terminat
		ep := discovery.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discovery.EndpointConditions{Ready: &r, Serving: &s, Terminating: &t},
		}
		if e.node != "" {
			node := e.node
			ep.NodeName = &node
		}
		if e.zoneHints != nil {
			ep.Hints = &discovery.EndpointHints{}
			for _, z := range e.zoneHints {
				ep.Hints.ForZones = append(ep.Hints.ForZones, discovery.ForZone{Name: z})
			}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

func portName(ns, name, port string) ServicePortName {
	return ServicePortName{Namespace: ns, Name: name, Port: port, Protocol: v1.ProtocolTCP}
}

// changed lists a ChangeSet's ports as sorted strings.
func changed(cs ChangeSet) []string {
	var out []string
	for n := range cs.Ports {
		out = append(out, n.String())
	}
	sort.Strings(out)
	return out
}

func endpointStrings(eps []Endpoint) []string {
	out := make([]string, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.String())
	}
	return out
}

type rejection struct{ object, err string }

// newTestTracker returns a Tracker whose rejections are recorded.
func newTestTracker(t *testing.T, node string) (*Tracker, *[]rejection) {
	t.Helper()
	var rejects []rejection
	tr := NewTracker(Options{
		NodeName: node,
		Reject:   func(object string, err error) { rejects = append(rejects, rejection{object, err.Error()}) },
		ValidateScheduler: func(name string, flags []string) error {
			if name != "rr" && name != "wrr" {
				return fmt.Errorf("unknown scheduler %q", name)
			}
			return nil
		},
	})
	return tr, &rejects
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
