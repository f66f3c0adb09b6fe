package kube

import (
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// trimMeta drops the metadata kproxy never reads: managedFields, owner
// references (every EndpointSlice has one, to its Service), finalizers and the
// generated-name prefix.
func trimMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.OwnerReferences = nil
	m.Finalizers = nil
	m.GenerateName = ""
}

// keepLabels keeps only the labels named (the ones kproxy reads); nil when none is
// set. The EndpointSlice controller copies every label of a Service onto its
// slices, so this drops a map per object in most clusters.
func keepLabels(m map[string]string, names ...string) map[string]string {
	var out map[string]string
	for _, k := range names {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string, 1)
			}
			out[k] = v
		}
	}
	return out
}

// Labels kproxy reads: a Service's (state.Proxyable, serviceHandler) and an
// EndpointSlice's (state.SliceServiceName, sliceHandler).
var (
	serviceLabels = []string{state.LabelServiceProxyName}
	sliceLabels   = []string{discovery.LabelServiceName, state.LabelServiceProxyName, v1.IsHeadlessService}
)

// transformService keeps spec (minus the selector, which only the endpoint
// controllers use), the service-proxy-name label, kproxy's annotations and the
// load-balancer ingress addresses of status.
func transformService(obj any) (any, error) {
	svc, ok := obj.(*v1.Service)
	if !ok {
		return obj, nil
	}
	trimMeta(&svc.ObjectMeta)
	svc.Labels = keepLabels(svc.Labels, serviceLabels...)
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
// and hints, the ports, the labels kproxy reads, kproxy's annotations and the
// trigger time. Endpoints on the same node or in the same zone share one
// NodeName or Zone pointer (interned): the decoder allocates a pointer and a
// string for each endpoint.
func transformEndpointSlice(obj any) (any, error) {
	es, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return obj, nil
	}
	trimMeta(&es.ObjectMeta)
	es.Labels = keepLabels(es.Labels, sliceLabels...)
	es.Annotations = keepAnnotations(es.Annotations, state.TriggerTimeAnnotation)
	for i := range es.Endpoints {
		e := &es.Endpoints[i]
		e.TargetRef = nil
		e.Hostname = nil
		e.DeprecatedTopology = nil
		e.NodeName = places.intern(e.NodeName)
		e.Zone = places.intern(e.Zone)
	}
	return es, nil
}

// transformServiceFor is the Service transform for handler h: when h converts
// Services itself (the Tracker), the informer caches its state.Service (the
// ServicePorts its snapshots share) instead of the object. Other handlers get
// the trimmed Service.
func transformServiceFor(h state.Handler) cache.TransformFunc {
	sc, ok := h.(state.ServiceConverter)
	if !ok {
		return transformService
	}
	return func(obj any) (any, error) {
		svc, ok := obj.(*v1.Service)
		if !ok {
			return obj, nil // already converted, or a tombstone
		}
		return sc.ConvertService(svc), nil
	}
}

// transformSliceFor is the EndpointSlice transform for handler h: when h converts
// slices itself (the Tracker), the informer caches its state.Slice, the very
// object h keeps, instead of the EndpointSlice: one copy of each slice's
// endpoints in the process instead of the object in the cache and a converted
// copy in the Tracker. Other handlers get the trimmed EndpointSlice.
func transformSliceFor(h state.Handler) cache.TransformFunc {
	sc, ok := h.(state.SliceConverter)
	if !ok {
		return transformEndpointSlice
	}
	return func(obj any) (any, error) {
		es, ok := obj.(*discovery.EndpointSlice)
		if !ok {
			return obj, nil // already converted, or a tombstone
		}
		// Interned first: the converted endpoints keep the shared node and zone names.
		if _, err := transformEndpointSlice(es); err != nil {
			return nil, err
		}
		return sc.ConvertSlice(es), nil
	}
}

// places interns node and zone names. Nothing writes through the pointers of an
// informer's objects (they are read-only once cached), so sharing them is safe.
var places = interner{max: 1 << 16}

// interner hands out one pointer per distinct string, up to max strings (node
// names and zones are few; past max, pointers are left as they are).
type interner struct {
	mu  sync.Mutex
	max int
	m   map[string]*string
}

func (in *interner) intern(p *string) *string {
	if p == nil {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if q, ok := in.m[*p]; ok {
		return q
	}
	if len(in.m) >= in.max {
		return p
	}
	if in.m == nil {
		in.m = map[string]*string{}
	}
	in.m[*p] = p
	return p
}

// transformNode keeps labels, taints, the deletion timestamp and the addresses.
func transformNode(obj any) (any, error) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return obj, nil
	}
	trimMeta(&n.ObjectMeta)
	n.Annotations = keepAnnotations(n.Annotations)
	n.Status = v1.NodeStatus{Addresses: n.Status.Addresses}
	return n, nil
}
