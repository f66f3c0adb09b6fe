package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/flowcontrol"

	"kproxy.dev/kproxy/internal/source/kubescheme"
)

// The resources the source watches, as Client.ListerWatcher takes them.
const (
	ResourceServices       = "services"
	ResourceEndpointSlices = "endpointslices"
	ResourceNodes          = "nodes"
	ResourceServiceCIDRs   = "servicecidrs"
)

// Client is what the source asks of the API server: a lister-watcher of each
// resource it watches (cluster-wide, tweak applied to every list and watch) and
// a GET of /version for the health probe. BuildClient makes the real one; tests
// adapt a fake clientset (internal/testing/fakekube).
//
// It is not client-go's kubernetes.Interface on purpose: the clientset links
// the typed clients, informers and scheme of every built-in API group, and their
// package initialisers alone keep several MiB of the binary resident.
type Client interface {
	ListerWatcher(resource string, tweak func(*metav1.ListOptions)) cache.ListerWatcher
	Version(ctx context.Context) error
}

// restClient lists and watches through one REST client per API group, sharing one
// HTTP transport and one rate limiter, as client-go's clientset does.
type restClient struct {
	core, discovery, networking rest.Interface
}

func newRESTClient(cfg *rest.Config) (*restClient, error) {
	c := *cfg
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	httpClient, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, err
	}
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, fmt.Errorf("burst is required to be greater than 0 when QPS is set to greater than 0")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	group := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		gc := c
		gc.GroupVersion = &gv
		gc.APIPath = apiPath
		gc.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(kubescheme.Scheme, kubescheme.Codecs).WithoutConversion()
		return rest.RESTClientForConfigAndClient(&gc, httpClient)
	}
	var rc restClient
	if rc.core, err = group(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if rc.discovery, err = group(discoveryv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if rc.networking, err = group(networkingv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return &rc, nil
}

// route is the REST client and list type of a resource.
func (c *restClient) route(resource string) (rest.Interface, func() runtime.Object) {
	switch resource {
	case ResourceServices:
		return c.core, func() runtime.Object { return &corev1.ServiceList{} }
	case ResourceEndpointSlices:
		return c.discovery, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }
	case ResourceNodes:
		return c.core, func() runtime.Object { return &corev1.NodeList{} }
	case ResourceServiceCIDRs:
		return c.networking, func() runtime.Object { return &networkingv1.ServiceCIDRList{} }
	}
	panic("kube: no route for resource " + resource)
}

// ListerWatcher lists and watches resource in every namespace as client-go's
// generated informers do (protobuf preferred, the reflector's watch-list
// streaming allowed).
func (c *restClient) ListerWatcher(resource string, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	rc, newList := c.route(resource)
	request := func(opts metav1.ListOptions) *rest.Request {
		if tweak != nil {
			tweak(&opts)
		}
		var timeout time.Duration
		if opts.TimeoutSeconds != nil {
			timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
		}
		return rc.Get().UseProtobufAsDefaultIfPreferred(true).Resource(resource).
			VersionedParams(&opts, kubescheme.ParameterCodec).Timeout(timeout)
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			return list, request(opts).Do(ctx).Into(list)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return request(opts).Watch(ctx)
		},
	}
	return cache.ToListWatcherWithWatchListSemantics(lw, c)
}

// Version GETs /version (allowed to every client by system:public-info-viewer).
func (c *restClient) Version(ctx context.Context) error {
	return c.core.Get().AbsPath("/version").Do(ctx).Error()
}
