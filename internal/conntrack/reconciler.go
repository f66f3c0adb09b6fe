package conntrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kproxy.dev/kproxy/internal/state"
)

// Family is an IP family as the metrics label it ("IPv4", "IPv6").
type Family string

// The families the reconciler walks.
const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// Lister lists the conntrack table of one family (the netlink one is NewLister).
type Lister interface {
	List(f Family) ([]Flow, error)
}

// ReconcilerMetrics are kube-proxy's conntrack reconciler metrics.
type ReconcilerMetrics struct {
	SyncDuration   *prometheus.HistogramVec
	DeletedEntries *prometheus.CounterVec
}

// NewReconcilerMetrics builds the metrics and registers them on reg (nil: none).
func NewReconcilerMetrics(reg prometheus.Registerer) *ReconcilerMetrics {
	m := &ReconcilerMetrics{
		SyncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "kubeproxy",
			Name:    "conntrack_reconciler_sync_duration_seconds",
			Help:    "ReconcileConntrackFlowsLatency latency in seconds",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"ip_family"}),
		DeletedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kubeproxy",
			Name: "conntrack_reconciler_deleted_entries_total",
			Help: "Cumulative conntrack flows deleted by conntrack reconciler"}, []string{"ip_family"}),
	}
	if reg != nil {
		reg.MustRegister(m.SyncDuration, m.DeletedEntries)
	}
	return m
}

// Reconciler periodically removes stale UDP conntrack entries (see Reconcile): the
// safety net behind the cleanup each sync does for the endpoints it saw change.
type Reconciler struct {
	Lister  Lister
	Deleter Deleter
	// Snapshot returns the state last synced to the dataplane (nil: skip the round).
	Snapshot func() *state.Snapshot
	// IsNodeAddr narrows NodePort matches (see Reconcile); nil matches any address.
	IsNodeAddr func(netip.Addr) bool
	Metrics    *ReconcilerMetrics
	Log        *slog.Logger
	// Families defaults to both.
	Families []Family
}

// ReconcileOnce runs one round over every family and returns how many entries it
// deleted. A family whose listing fails is reported and the others still run.
func (r *Reconciler) ReconcileOnce() (uint, error) {
	snap := r.Snapshot()
	if snap == nil {
		return 0, nil
	}
	fams := r.Families
	if len(fams) == 0 {
		fams = []Family{IPv4, IPv6}
	}
	var total uint
	var errs []error
	for _, f := range fams {
		n, err := r.family(f, snap)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("conntrack reconciler (%s): %w", f, err))
		}
	}
	return total, errors.Join(errs...)
}

func (r *Reconciler) family(f Family, snap *state.Snapshot) (uint, error) {
	start := time.Now()
	if r.Metrics != nil {
		defer func() { r.Metrics.SyncDuration.WithLabelValues(string(f)).Observe(time.Since(start).Seconds()) }()
	}
	flows, err := r.Lister.List(f)
	if err != nil {
		return 0, err
	}
	filters := Reconcile(flows, snap, r.IsNodeAddr)
	if len(filters) == 0 {
		return 0, nil
	}
	n, err := r.Deleter.Delete(filters)
	if r.Metrics != nil {
		r.Metrics.DeletedEntries.WithLabelValues(string(f)).Add(float64(n))
	}
	return n, err
}

// Run reconciles every period until ctx ends. Errors are logged once per distinct
// message, deletions at info level.
func (r *Reconciler) Run(ctx context.Context, period time.Duration) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.ReconcileOnce()
		switch {
		case err != nil && err.Error() != last:
			log.Warn("conntrack reconciler", "err", err)
			last = err.Error()
		case err == nil:
			last = ""
		}
		if n > 0 {
			log.Info("conntrack reconciler deleted stale UDP entries", "count", n)
		}
	}
}
