// Package kube is the cluster source: client-go informers for Services,
// EndpointSlices, this node's Node object and (for a handler that takes them)
// networking.k8s.io/v1 ServiceCIDRs, feeding a state.Handler, with
// kube-proxy's filters (the service-proxy-name label, headless slices).
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// DefaultResync is kube-proxy's default configSyncPeriod.
const DefaultResync = 15 * time.Minute

// Options configure a kube Source.
type Options struct {
	// Client lists and watches (BuildClient, or a fake clientset adapted by
	// internal/testing/fakekube in tests).
	Client Client
	// NodeName is this node; only its Node object is watched. "" watches no Node.
	NodeName string
	// Resync is the informers' resync period (configSyncPeriod); 0 means DefaultResync.
	Resync time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnWatchError, if set, is told of every failed list or watch (after
	// client-go's own handling, which logs it through klog), for /healthz.
	OnWatchError func(error)
	// OnWatchRestored, if set, is told when a failed watch works again.
	OnWatchRestored func()
}

// Source watches a cluster.
type Source struct {
	opts Options
	log  *slog.Logger
	// noTransform keeps whole objects in the informer caches (benchmarks only).
	noTransform bool
}

var _ source.Source = (*Source)(nil)

// New checks the options.
func New(o Options) (*Source, error) {
	if o.Client == nil {
		return nil, errors.New("kube source: a Kubernetes client is required")
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Source{opts: o, log: log.With("source", "kube")}, nil
}

// proxyLabelSelector is kube-proxy's: objects another proxy claims are not ours,
// and headless Services' slices have nothing to program.
func proxyLabelSelector() string {
	noProxyName, err := labels.NewRequirement(state.LabelServiceProxyName, selection.DoesNotExist, nil)
	if err != nil {
		panic(err) // a constant label key: cannot fail
	}
	noHeadless, err := labels.NewRequirement(v1.IsHeadlessService, selection.DoesNotExist, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*noProxyName, *noHeadless).String()
}

// Run starts the informers, waits until each has delivered its initial list to h,
// calls synced, and returns when ctx ends.
func (s *Source) Run(ctx context.Context, h state.Handler, synced func()) error {
	proxied := func(o *metav1.ListOptions) { o.LabelSelector = proxyLabelSelector() }
	var infs []cache.SharedIndexInformer
	newInformer := func(resource string, obj runtime.Object, tweak func(*metav1.ListOptions)) cache.SharedIndexInformer {
		inf := cache.NewSharedIndexInformerWithOptions(s.opts.Client.ListerWatcher(resource, tweak), obj,
			cache.SharedIndexInformerOptions{ResyncPeriod: s.opts.Resync})
		infs = append(infs, inf)
		return inf
	}
	var regs []cache.ResourceEventHandlerRegistration
	var watches []*watchState
	add := func(inf cache.SharedIndexInformer, t cache.TransformFunc, e eventHandler, kind string) error {
		if !s.noTransform {
			if err := inf.SetTransform(t); err != nil {
				return err
			}
		}
		w := &watchState{s: s, inf: inf, kind: kind}
		watches = append(watches, w)
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, r *cache.Reflector, err error) {
			cache.DefaultWatchErrorHandler(ctx, r, err)
			w.failed(ctx, err)
		})
		reg, err := inf.AddEventHandler(e.funcs())
		regs = append(regs, reg)
		return err
	}
	if err := add(newInformer(ResourceServices, &v1.Service{}, proxied), transformServiceFor(h), serviceHandler(h, s.log), "Services"); err != nil {
		return fmt.Errorf("service informer: %w", err)
	}
	if err := add(newInformer(ResourceEndpointSlices, &discoveryv1.EndpointSlice{}, proxied), transformSliceFor(h), sliceHandler(h, s.log), "EndpointSlices"); err != nil {
		return fmt.Errorf("endpointslice informer: %w", err)
	}
	if s.opts.NodeName != "" {
		thisNode := func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.NodeName).String()
		}
		if err := add(newInformer(ResourceNodes, &v1.Node{}, thisNode), transformNode, nodeHandler(h, s.opts.NodeName, s.log), "Node"); err != nil {
			return fmt.Errorf("node informer: %w", err)
		}
	}
	if ch, ok := h.(state.ServiceCIDRHandler); ok {
		// Like kube-proxy, the first sync does not wait for ServiceCIDRs: they only
		// add drop rules, and a cluster or role without them must still be served.
		// For the same reason a failing ServiceCIDR watch is only logged (client-go's
		// handler), not reported to OnWatchError (health).
		inf := newInformer(ResourceServiceCIDRs, &networkingv1.ServiceCIDR{}, nil)
		if _, err := inf.AddEventHandler(serviceCIDRHandler(ch, s.log).funcs()); err != nil {
			return fmt.Errorf("servicecidr informer: %w", err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for _, inf := range infs {
		running.Go(func() { inf.RunWithContext(runCtx) })
	}
	defer func() {
		stop()
		running.Wait()
	}()
	// A registration has synced when its handler has seen the whole initial list,
	// which is later than the informer's own cache.
	hasSynced := make([]cache.InformerSynced, 0, len(regs))
	for _, r := range regs {
		hasSynced = append(hasSynced, r.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), hasSynced...) {
		return nil // ctx ended first
	}
	s.log.Info("informer caches synced")
	synced()
	s.probeAPIServer(ctx, watches)
	return nil
}
