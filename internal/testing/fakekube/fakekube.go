// Package fakekube adapts a client-go clientset (in tests, a fake one) to the
// kube source's Client: the source itself does not link client-go's clientset
// (see internal/source/kube.Client), tests keep using its fakes to create, update
// and delete objects and to inject watch failures.
package fakekube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Client lists and watches through a clientset.
type Client struct {
	CS kubernetes.Interface
}

// New adapts cs.
func New(cs kubernetes.Interface) Client { return Client{CS: cs} }

type listWatch struct {
	list  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watch func(context.Context, metav1.ListOptions) (watch.Interface, error)
}

func (c Client) route(resource string) listWatch {
	switch resource {
	case "services":
		s := c.CS.CoreV1().Services("")
		return listWatch{func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return s.List(ctx, o) }, s.Watch}
	case "endpointslices":
		s := c.CS.DiscoveryV1().EndpointSlices("")
		return listWatch{func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return s.List(ctx, o) }, s.Watch}
	case "nodes":
		s := c.CS.CoreV1().Nodes()
		return listWatch{func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return s.List(ctx, o) }, s.Watch}
	case "servicecidrs":
		s := c.CS.NetworkingV1().ServiceCIDRs()
		return listWatch{func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return s.List(ctx, o) }, s.Watch}
	}
	panic(fmt.Sprintf("fakekube: unknown resource %q", resource))
}

// ListerWatcher is what client-go's generated informers build for resource.
func (c Client) ListerWatcher(resource string, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	r := c.route(resource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&o)
			}
			return r.list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if tweak != nil {
				tweak(&o)
			}
			return r.watch(ctx, o)
		},
	}
	return cache.ToListWatcherWithWatchListSemantics(lw, c.CS)
}

// Version asks the clientset's discovery client for the server version.
func (c Client) Version(context.Context) error {
	_, err := c.CS.Discovery().ServerVersion()
	return err
}
