package state

import (
	"fmt"
	"reflect"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Service is a Service as the Tracker keeps it: its ServicePorts, converted once
// when it arrives, which the Tracker's snapshots then share; nothing else of the
// object is kept. The kube source converts in its informer's transform
// (ServiceConverter), so that the informer cache holds the same Service.
//
// A Service is immutable once made. It implements runtime.Object and
// metav1.ObjectMetaAccessor (namespace and name) for the informer cache.
type Service struct {
	Namespace, Name string
	// Foreign is set when another proxy handles the Service (the
	// service-proxy-name label the sources filter on).
	Foreign bool
	// ports are nil for a Service no mode proxies (headless, ExternalName).
	ports []*ServicePort
	// err is why the Service could not be converted: its last good ports keep
	// serving. schedErr is a scheduler annotation the node cannot honour (its
	// ports use the node default). The Tracker reports both.
	err, schedErr error
}

// ConvertService converts svc for the Tracker's options.
func (t *Tracker) ConvertService(svc *v1.Service) *Service {
	s := &Service{Namespace: svc.Namespace, Name: svc.Name}
	_, s.Foreign = svc.Labels[LabelServiceProxyName]
	if !Proxyable(svc) {
		return s
	}
	ports, err := ServicePorts(svc)
	if err != nil {
		s.err = err
		return s
	}
	name, flags := SchedulerAnnotation(svc)
	if name != "" && t.opts.ValidateScheduler != nil {
		if err := t.opts.ValidateScheduler(name, flags); err != nil {
			s.schedErr = fmt.Errorf("metadata.annotations[%s]: %v; using the node default", AnnotationScheduler, err)
			name, flags = "", nil
		}
	}
	for _, sp := range ports {
		sp.Scheduler, sp.SchedulerFlags = name, flags
		if t.opts.DisableExternalIPs {
			sp.ExternalIPs = nil
		}
	}
	s.ports = ports
	return s
}

// same says whether two versions of a Service give the Tracker the same state.
func (s *Service) same(o *Service) bool {
	return s.Foreign == o.Foreign && fmt.Sprint(s.err) == fmt.Sprint(o.err) &&
		fmt.Sprint(s.schedErr) == fmt.Sprint(o.schedErr) && reflect.DeepEqual(s.ports, o.ports)
}

// GetObjectKind implements runtime.Object: a Service has no type metadata.
func (s *Service) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. A Service is immutable: the copy
// shares its ports.
func (s *Service) DeepCopyObject() runtime.Object {
	c := *s
	return &c
}

// GetObjectMeta implements metav1.ObjectMetaAccessor, for the informer's keys.
func (s *Service) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name}
}

// ServiceConverter is a Handler that takes Services converted ahead of time (see
// SliceConverter).
type ServiceConverter interface {
	ConvertService(svc *v1.Service) *Service
	UpsertConvertedService(s *Service)
}
