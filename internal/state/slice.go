package state

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Slice is an EndpointSlice as the Tracker keeps it: converted once, when it
// arrives, to the endpoints of each port, sorted and deduplicated. Nothing else
// of the object is kept, and a Service with one slice (nearly all) hands the
// slice's endpoint lists to its snapshot as they are: one copy of each endpoint
// set. The kube source converts in its informer's transform
// (SliceConverter), so that the informer cache holds the same Slice.
//
// A Slice is immutable once made. It implements runtime.Object and
// metav1.ObjectMetaAccessor (namespace and name) for the informer cache.
type Slice struct {
	Namespace, Name string
	// Service is the owning Service's name (the kubernetes.io/service-name label).
	Service string
	// Foreign is set when the slice belongs to another proxy or to a headless
	// Service (the labels the sources filter on).
	Foreign bool
	ports   []slicePort
	// trigger is the endpoints.kubernetes.io/last-change-trigger-time annotation.
	trigger string
	// weightsErr is a kproxy.dev/weights annotation that did not parse (the
	// weights are then ignored), reported by the Tracker.
	weightsErr error
}

type slicePort struct {
	name string
	eps  []Endpoint
}

// ConvertSlice converts es for a node named nodeName (endpoints on it are local).
func ConvertSlice(es *discovery.EndpointSlice, nodeName string) *Slice {
	s := &Slice{
		Namespace: es.Namespace,
		Name:      es.Name,
		Service:   SliceServiceName(es),
		trigger:   es.Annotations[TriggerTimeAnnotation],
	}
	_, other := es.Labels[LabelServiceProxyName]
	_, headless := es.Labels[v1.IsHeadlessService]
	s.Foreign = other || headless
	weights, err := ParseWeights(es.Annotations[AnnotationWeights])
	if err != nil {
		s.weightsErr = fmt.Errorf("metadata.annotations[%s]: %v", AnnotationWeights, err)
		weights = nil
	}
	byName := map[string][]Endpoint{}
	appendSliceEndpoints(byName, es, weights, nodeName)
	s.ports = make([]slicePort, 0, len(byName))
	for name, eps := range byName {
		s.ports = append(s.ports, slicePort{name: name, eps: dedupEndpoints(eps)})
	}
	slices.SortFunc(s.ports, func(a, b slicePort) int { return strings.Compare(a.name, b.name) })
	return s
}

// Endpoints returns the slice's endpoints of the port named port, sorted by
// address and port; the caller must not modify them.
func (s *Slice) Endpoints(port string) []Endpoint {
	for _, p := range s.ports {
		if p.name == port {
			return p.eps
		}
	}
	return nil
}

// same says whether two versions of a slice give the Tracker the same state.
func (s *Slice) same(o *Slice) bool {
	return s.Service == o.Service && s.Foreign == o.Foreign && s.trigger == o.trigger &&
		fmt.Sprint(s.weightsErr) == fmt.Sprint(o.weightsErr) && reflect.DeepEqual(s.ports, o.ports)
}

// GetObjectKind implements runtime.Object: a Slice has no type metadata.
func (s *Slice) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. A Slice is immutable: the copy shares
// its endpoint lists.
func (s *Slice) DeepCopyObject() runtime.Object {
	c := *s
	return &c
}

// GetObjectMeta implements metav1.ObjectMetaAccessor, for the informer's keys.
func (s *Slice) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}
}

// SliceConverter is a Handler that takes EndpointSlices converted ahead of time:
// the kube source converts in its informer's transform, so that the informer
// cache and the Tracker share one Slice instead of holding the object and a
// converted copy.
type SliceConverter interface {
	ConvertSlice(es *discovery.EndpointSlice) *Slice
	UpsertSlice(s *Slice)
}
