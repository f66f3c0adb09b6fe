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
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// DefaultResync is kube-proxy's default configSyncPeriod.
const DefaultResync = 15 * time.Minute

// Options configure a kube Source.
type Options struct {
	// Client is the clientset (BuildClient, or a fake in tests).
	Client kubernetes.Interface
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
	svcFactory := informers.NewSharedInformerFactoryWithOptions(s.opts.Client, s.opts.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = proxyLabelSelector() }))
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
	if err := add(svcFactory.Core().V1().Services().Informer(), transformService, serviceHandler(h, s.log), "Services"); err != nil {
		return fmt.Errorf("service informer: %w", err)
	}
	if err := add(svcFactory.Discovery().V1().EndpointSlices().Informer(), transformEndpointSlice, sliceHandler(h, s.log), "EndpointSlices"); err != nil {
		return fmt.Errorf("endpointslice informer: %w", err)
	}
	factories := []informers.SharedInformerFactory{svcFactory}
	if s.opts.NodeName != "" {
		nodeFactory := informers.NewSharedInformerFactoryWithOptions(s.opts.Client, s.opts.Resync,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.opts.NodeName).String()
			}))
		if err := add(nodeFactory.Core().V1().Nodes().Informer(), transformNode, nodeHandler(h, s.opts.NodeName, s.log), "Node"); err != nil {
			return fmt.Errorf("node informer: %w", err)
		}
		factories = append(factories, nodeFactory)
	}
	if ch, ok := h.(state.ServiceCIDRHandler); ok {
		// Like kube-proxy, the first sync does not wait for ServiceCIDRs: they only
		// add drop rules, and a cluster or role without them must still be served.
		// For the same reason a failing ServiceCIDR watch is only logged (client-go's
		// handler), not reported to OnWatchError (health).
		cidrFactory := informers.NewSharedInformerFactory(s.opts.Client, s.opts.Resync)
		if _, err := cidrFactory.Networking().V1().ServiceCIDRs().Informer().AddEventHandler(serviceCIDRHandler(ch, s.log).funcs()); err != nil {
			return fmt.Errorf("servicecidr informer: %w", err)
		}
		factories = append(factories, cidrFactory)
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range factories {
			f.Shutdown()
		}
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
