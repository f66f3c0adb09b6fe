package kube

import (
	"fmt"
	"log/slog"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/cache"

	"kproxy.dev/kproxy/internal/state"
)

// eventHandler adapts informer callbacks for one kind to the state.Handler.
type eventHandler struct {
	log *slog.Logger
	// keep is false for objects this proxy must not see (another proxy's, headless
	// slices, other nodes). The informers already filter on the server; this also
	// covers an object that gains such a label, which the server reports as an update.
	keep   func(obj any) bool
	upsert func(obj any)
	remove func(namespace, name string)
}

func (e eventHandler) funcs() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    e.onUpsert,
		UpdateFunc: func(_, obj any) { e.onUpsert(obj) },
		DeleteFunc: e.onDelete,
	}
}

func (e eventHandler) onUpsert(obj any) {
	if e.keep(obj) {
		e.upsert(obj)
		return
	}
	if ns, name, ok := nameOf(obj); ok {
		e.remove(ns, name)
	}
}

// onDelete handles both the object and the tombstone an informer hands over when it
// missed the delete (the final state is then unknown, but the key is not).
func (e eventHandler) onDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok && tomb.Obj != nil {
		if _, _, typed := nameOf(tomb.Obj); typed {
			obj = tomb.Obj
		}
	}
	ns, name, ok := nameOf(obj)
	if !ok {
		e.log.Warn("unexpected object in a delete event", "type", fmt.Sprintf("%T", obj))
		return
	}
	e.remove(ns, name)
}

func nameOf(obj any) (namespace, name string, ok bool) {
	switch o := obj.(type) {
	case *v1.Service:
		return o.Namespace, o.Name, true
	case *state.Service:
		return o.Namespace, o.Name, true
	case *discovery.EndpointSlice:
		return o.Namespace, o.Name, true
	case *state.Slice:
		return o.Namespace, o.Name, true
	case *v1.Node:
		return "", o.Name, true
	case *networkingv1.ServiceCIDR:
		return "", o.Name, true
	case cache.DeletedFinalStateUnknown:
		if ns, n, err := cache.SplitMetaNamespaceKey(o.Key); err == nil {
			return ns, n, true
		}
	}
	return "", "", false
}

func serviceHandler(h state.Handler, log *slog.Logger) eventHandler {
	return eventHandler{
		log: log,
		keep: func(obj any) bool {
			switch svc := obj.(type) {
			case *state.Service: // converted by transformServiceFor
				return !svc.Foreign
			case *v1.Service:
				return !hasLabel(svc.Labels, state.LabelServiceProxyName)
			}
			return false
		},
		upsert: func(obj any) {
			if svc, ok := obj.(*state.Service); ok {
				h.(state.ServiceConverter).UpsertConvertedService(svc)
				return
			}
			h.UpsertService(obj.(*v1.Service))
		},
		remove: h.DeleteService,
	}
}

func sliceHandler(h state.Handler, log *slog.Logger) eventHandler {
	return eventHandler{
		log: log,
		keep: func(obj any) bool {
			switch es := obj.(type) {
			case *state.Slice: // converted by transformSliceFor
				return !es.Foreign
			case *discovery.EndpointSlice:
				return !hasLabel(es.Labels, state.LabelServiceProxyName) && !hasLabel(es.Labels, v1.IsHeadlessService)
			}
			return false
		},
		upsert: func(obj any) {
			if s, ok := obj.(*state.Slice); ok {
				h.(state.SliceConverter).UpsertSlice(s)
				return
			}
			h.UpsertEndpointSlice(obj.(*discovery.EndpointSlice))
		},
		remove: h.DeleteEndpointSlice,
	}
}

func nodeHandler(h state.Handler, nodeName string, log *slog.Logger) eventHandler {
	return eventHandler{
		log: log,
		keep: func(obj any) bool {
			n, ok := obj.(*v1.Node)
			return ok && n.Name == nodeName
		},
		upsert: func(obj any) { h.UpsertNode(obj.(*v1.Node)) },
		remove: func(_, name string) {
			if name == nodeName {
				h.DeleteNode(name)
			}
		},
	}
}

func hasLabel(labels map[string]string, key string) bool {
	_, ok := labels[key]
	return ok
}

func serviceCIDRHandler(h state.ServiceCIDRHandler, log *slog.Logger) eventHandler {
	return eventHandler{
		log: log,
		keep: func(obj any) bool {
			_, ok := obj.(*networkingv1.ServiceCIDR)
			return ok
		},
		upsert: func(obj any) { h.UpsertServiceCIDR(obj.(*networkingv1.ServiceCIDR)) },
		remove: func(_, name string) { h.DeleteServiceCIDR(name) },
	}
}
