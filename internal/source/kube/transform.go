package kube

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"kproxy.dev/kproxy/internal/state"
)

// Informer transforms: every Service, EndpointSlice and Node is cut down to what
// kproxy reads (state/convert.go, state/tracker.go, daemon/node.go) before the
// informer caches it, so that the cache, and the Tracker that shares its objects,
// hold no managedFields, no foreign annotations (kubectl's last-applied
// configuration is often the largest part of an object), no pod references of
// endpoints and no node images or conditions. Objects are changed in place, as
// client-go allows since 1.27; each function is idempotent.
var (
	_ cache.TransformFunc = transformService
	_ cache.TransformFunc = transformEndpointSlice
	_ cache.TransformFunc = transformNode
)

// annotationPrefix marks the annotations kproxy reads (state.Annotation*).
const annotationPrefix = "kproxy.dev/"

// keepAnnotations drops the annotations kproxy does not read; extra names more to
// keep besides kproxy.dev/*.
func keepAnnotations(m map[string]string, extra ...string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if !strings.HasPrefix(k, annotationPrefix) && !contains(extra, k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, 1)
		}
		out[k] = v
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// transformService keeps spec (minus the selector, which only the endpoint
// controllers use), labels, kproxy's annotations and the load-balancer ingress
// addresses of status.
func transformService(obj any) (any, error) {
	svc, ok := obj.(*v1.Service)
	if !ok {
		return obj, nil
	}
	svc.ManagedFields = nil
	svc.Annotations = keepAnnotations(svc.Annotations)
	svc.Spec.Selector = nil
	svc.Status.Conditions = nil
	ing := svc.Status.LoadBalancer.Ingress
	for i := range ing {
		ing[i].Hostname = ""
		ing[i].Ports = nil
	}
	return svc, nil
}

// transformEndpointSlice keeps the endpoints' addresses, conditions, node, zone
// and hints, the ports, the labels, kproxy's annotations and the trigger time.
func transformEndpointSlice(obj any) (any, error) {
	es, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return obj, nil
	}
	es.ManagedFields = nil
	es.Annotations = keepAnnotations(es.Annotations, state.TriggerTimeAnnotation)
	for i := range es.Endpoints {
		e := &es.Endpoints[i]
		e.TargetRef = nil
		e.Hostname = nil
		e.DeprecatedTopology = nil
	}
	return es, nil
}

// transformNode keeps labels, taints, the deletion timestamp and the addresses.
func transformNode(obj any) (any, error) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Annotations = keepAnnotations(n.Annotations)
	n.Status = v1.NodeStatus{Addresses: n.Status.Addresses}
	return n, nil
}
