// Package kubescheme is the API scheme of the only groups kproxy reads: core/v1
// (Services, Nodes, List), discovery.k8s.io/v1 (EndpointSlices) and
// networking.k8s.io/v1 (ServiceCIDRs).
//
// It stands in for client-go's kubernetes/scheme, whose init registers every
// built-in API group (about sixty group versions) and links their types, typed
// clients and informers: several MiB of the binary's pages resident in every
// kproxy process, whether it watches a cluster or not (docs/performance.md,
// "The process baseline").
package kubescheme

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// Scheme knows the kinds of the three group versions, registered as client-go's
// kubernetes/scheme registers them.
var Scheme = runtime.NewScheme()

// Codecs and ParameterCodec are built on Scheme.
var (
	Codecs         = serializer.NewCodecFactory(Scheme)
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(corev1.AddToScheme(Scheme))
	utilruntime.Must(discoveryv1.AddToScheme(Scheme))
	utilruntime.Must(networkingv1.AddToScheme(Scheme))
}
