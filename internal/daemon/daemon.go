// Package daemon wires kproxy's parts into the running proxy: a source feeds a
// state.Tracker, a bounded-frequency runner syncs the chosen dataplane from the
// tracker's snapshots, and the metrics, healthz and admin servers report on it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/healthz"
	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/metrics"
	"kproxy.dev/kproxy/internal/runner"
	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/state"
)

// DrainTimeout bounds the shutdown: a mode that carries connections itself
// (userspace) gets this long to let open connections finish.
const DrainTimeout = 30 * time.Second

// Options configure the daemon.
type Options struct {
	// Config is the effective, validated configuration.
	Config *kpconfig.KubeProxyConfiguration
	// ServicesFrom is a manifest file or directory (the file source).
	ServicesFrom string
	// Kubeconfig selects the kube source; "" with in-cluster variables set does too.
	Kubeconfig string
	// Master overrides the kubeconfig's API server address (--master).
	Master string
	// AdminBindAddress is an extra listener for GET /list; "" opens none (/list
	// is always served on the metrics address).
	AdminBindAddress string
	// Flagz, if set, lists the command line's flags for /flagz.
	Flagz func() map[string]string
	// Version is reported by /statusz.
	Version string
	// SetVerbosity, if set, changes -v while running (PUT /debug/flags/v).
	SetVerbosity func(v int)
	// DemoBackends are ip:port addresses to serve tiny demo HTTP/UDP backends on.
	DemoBackends []string
	// Relay bounds the userspace mode's connections (--userspace-* flags).
	Relay dataplane.RelayLimits
	// Source, if set, is used instead of ServicesFrom/Kubeconfig (tests).
	Source source.Source
	// Registry takes every metric; nil means a new one.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Serving, if set, is told each server's bound address ("healthz", "metrics",
	// "admin"), so that callers binding port 0 can find them.
	Serving func(server, addr string)
}

func (o *Options) log() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

// NodeName is the hostname override, else the host's name, lowercased as
// kube-proxy does.
func NodeName(c *kpconfig.KubeProxyConfiguration) string {
	if c.HostnameOverride != "" {
		return strings.ToLower(strings.TrimSpace(c.HostnameOverride))
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}

// daemon is one running proxy.
type daemon struct {
	o       Options
	log     *slog.Logger
	mode    string
	dp      dataplane.Dataplane
	tracker *state.Tracker
	runner  *runner.Runner
	metrics *metrics.Metrics
	// modeMetrics are kube-proxy's mode-specific metrics, registered for the
	// code that does the work to increment.
	modeMetrics *metrics.ModeMetrics
	health      *healthz.Server
	started     time.Time
}

// Run runs the proxy until ctx is cancelled, then drains and returns. It returns
// an error when the proxy cannot start or its source fails.
func Run(ctx context.Context, o Options) error {
	d, src, err := build(o)
	if err != nil {
		return err
	}
	// Errors are logged inside: kube-proxy, too, starts after a failed cleanup.
	_ = CleanupOtherModes(ctx, d.mode, dataplane.Options{Config: d.o.Config, NodeName: NodeName(d.o.Config), Logger: d.log})
	return d.run(ctx, src)
}

func build(o Options) (*daemon, source.Source, error) {
	if o.Config == nil {
		o.Config = config.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	d := &daemon{o: o, log: o.log(), mode: config.Mode(o.Config), started: time.Now()}
	m, err := dataplane.Lookup(d.mode)
	if err != nil {
		return nil, nil, fmt.Errorf("--proxy-mode: %w", err)
	}
	nodeName := NodeName(o.Config)
	families := ipFamilies(o.Config)
	d.metrics = metrics.NewForFamilies(o.Registry, families)
	d.modeMetrics = metrics.RegisterModeMetrics(o.Registry, d.mode)
	metrics.RegisterComponentMetrics(o.Registry, o.Version, config.FeatureStates(o.Config))
	o.Registry.MustRegister(metrics.NewConntrackCollector(""))
	syncPeriod, minSync := config.SyncPeriods(o.Config)
	d.health = healthz.New(healthz.Options{Timeout: 2 * syncPeriod, Families: families,
		HealthzTotal: d.metrics.HealthzTotal, LivezTotal: d.metrics.LivezTotal})
	rejects := source.NewRejects(o.Registry, d.log)
	src, err := buildSource(o, nodeName, rejects, d.log, d.health)
	if err != nil {
		return nil, nil, err
	}
	d.dp, err = dataplane.Build(m, dataplane.Options{Config: o.Config, NodeName: nodeName, Registerer: o.Registry, Logger: d.log,
		ProxyHealthy: func() bool { return d.health.Health().Healthy }, Relay: o.Relay})
	if err != nil {
		return nil, nil, fmt.Errorf("proxy mode %s: %w", d.mode, err)
	}
	// The runner runs every syncPeriod: the core then checks the kernel's rules for
	// damage and forces a full sync only once an hour (kube-proxy's
	// FullSyncPeriod); a failed sync is retried with backoff up to syncPeriod.
	d.runner = runner.New(runner.Options{Fn: d.sync, MinInterval: minSync, MaxInterval: syncPeriod,
		RetryMin: max(minSync, time.Second), RetryMax: syncPeriod, OnResult: d.logResult})
	d.tracker = state.NewTracker(state.Options{NodeName: nodeName, ValidateScheduler: lb.Validate,
		Reject: rejects.Reject, OnChange: d.queued,
		DisableExternalIPs: !state.ExternalIPsAllowed(o.Config.FeatureGates)})
	if !state.ExternalIPsAllowed(o.Config.FeatureGates) {
		d.log.Info("feature gate AllowServiceExternalIPs is off: spec.externalIPs are not programmed")
	}
	applyOOMScoreAdj(o.Config.OOMScoreAdj, d.log)
	tuneConntrack(string(d.mode), o.Config, d.log)
	d.log.Info("kproxy starting", "mode", d.mode, "node", nodeName, "ipFamilies", families,
		"syncPeriod", syncPeriod, "minSyncPeriod", minSync)
	return d, src, nil
}

// ipFamilies are the IP families the node serves, as the health and metrics
// report them: those of clusterCIDR, IPv4 when it is empty.
func ipFamilies(c *kpconfig.KubeProxyConfiguration) []string {
	var v4, v6 bool
	for _, s := range strings.Split(c.ClusterCIDR, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			continue
		}
		v4, v6 = v4 || p.Addr().Is4(), v6 || !p.Addr().Is4()
	}
	switch {
	case v4 && v6:
		return []string{metrics.IPv4, metrics.IPv6}
	case v6:
		return []string{metrics.IPv6}
	default:
		return []string{metrics.IPv4}
	}
}

func (d *daemon) run(ctx context.Context, src source.Source) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopServers, err := d.startServers()
	if err != nil {
		return err
	}
	defer stopServers()
	if err := startDemoBackends(ctx, d.o.DemoBackends, d.log); err != nil {
		return err
	}
	if c, ok := d.dp.(*dataplane.Core); ok {
		go c.RunReconciler(ctx)
	}
	synced := make(chan struct{})
	srcErr := make(chan error, 1)
	h := &nodeWatch{Handler: d.tracker, nodeName: d.tracker.Last().Node.Name, health: d.health}
	go func() {
		srcErr <- src.Run(ctx, h, func() { close(synced) })
	}()
	loopDone := make(chan struct{})
	err = d.wait(ctx, synced, srcErr, loopDone)
	cancel()
	if started(synced) {
		<-loopDone
	}
	d.drain()
	return err
}

// wait starts the sync loop once the source has delivered its initial state (a
// sync before that would remove rules for Services not read yet) and returns when
// ctx ends or the source fails.
func (d *daemon) wait(ctx context.Context, synced <-chan struct{}, srcErr <-chan error, loopDone chan struct{}) error {
	select {
	case <-synced:
		d.health.SourceSynced()
		d.log.Info("source synced; starting the sync loop")
		go func() { d.runner.Loop(ctx); close(loopDone) }()
		d.runner.Run()
	case err := <-srcErr:
		return sourceError(ctx, err)
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-srcErr:
		return sourceError(ctx, err)
	case <-ctx.Done():
		return nil
	}
}

func sourceError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("stopped unexpectedly")
	}
	return fmt.Errorf("source: %w", err)
}

func started(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// drain lets a mode that carries connections itself finish them; kernel modes keep
// their rules on exit so that traffic flows while kproxy restarts, as kube-proxy's do.
func (d *daemon) drain() {
	dr, ok := dataplane.As[dataplane.Drainer](d.dp)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout+5*time.Second)
	defer cancel()
	d.log.Info("draining open connections", "timeout", DrainTimeout)
	if err := dr.Drain(ctx); err != nil {
		d.log.Warn("drain", "err", err)
	}
}
