//go:build linux && e2e_apiserver

package apiserver

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"kproxy.dev/kproxy/internal/testing/netns"
)

const backendPort = 8080

// service is a ClusterIP Service with one TCP port "p" (port → 8080).
func service(name, clusterIP string, port int32, labels map[string]string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{{Name: "p", Protocol: corev1.ProtocolTCP, Port: port,
				TargetPort: intstr.FromInt32(backendPort)}},
		},
	}
	if clusterIP != corev1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

// endpointSlice is the slice the EndpointSlice controller would write for service
// name (there is no controller-manager here, so the test writes it).
func endpointSlice(name string, ips []netip.Addr, labels map[string]string) *discoveryv1.EndpointSlice {
	l := map[string]string{discoveryv1.LabelServiceName: name}
	for k, v := range labels {
		l[k] = v
	}
	port, proto, pname := int32(backendPort), corev1.ProtocolTCP, "p"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: "default", Labels: l},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
	}
	ready, other := true, "node-b"
	for _, ip := range ips {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: &other})
	}
	return es
}

func create(t *testing.T, c kubernetes.Interface, svc *corev1.Service, slice *discoveryv1.EndpointSlice) {
	t.Helper()
	ctx := context.Background()
	if svc != nil {
		if _, err := c.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Service %s: %v", svc.Name, err)
		}
	}
	if slice != nil {
		if _, err := c.DiscoveryV1().EndpointSlices(slice.Namespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create EndpointSlice %s: %v", slice.Name, err)
		}
	}
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}}}
}

func ipsOf(nss ...*netns.NS) []netip.Addr {
	out := make([]netip.Addr, 0, len(nss))
	for _, n := range nss {
		out = append(out, n.IP)
	}
	return out
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
