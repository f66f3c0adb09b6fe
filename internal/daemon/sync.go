package daemon

import (
	"context"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/logging"
	"kproxy.dev/kproxy/internal/metrics"
)

// queued is the tracker's OnChange: note when the change was queued (for
// /healthz and the queued-timestamp metric) and ask the runner for a sync.
func (d *daemon) queued() {
	now := time.Now()
	svc, ep := d.tracker.Pending()
	d.metrics.Queued(now, svc, ep)
	d.health.QueuedUpdate()
	d.runner.Run()
}

// sync is the runner's function: one snapshot, one dataplane sync, its metrics.
func (d *daemon) sync(ctx context.Context) error {
	snap, cs := d.tracker.Snapshot()
	start := time.Now()
	stats, err := d.dp.Sync(ctx, snap, cs)
	end := time.Now()
	if stats.Skipped {
		// Nothing changed, nothing damaged, the hourly full sync not due: the
		// periodic run checked the kernel and wrote nothing.
		d.health.Updated()
		return nil
	}
	partial := dataplane.IsPartial(err)
	res := metrics.SyncResult{Start: start, End: end, Stats: stats, Changes: cs, Err: err}
	if partial {
		res.Err = nil // every other Service is programmed: a sync as far as metrics go
	}
	d.metrics.Synced(res)
	if err != nil && !partial {
		return err
	}
	// One bad Service must not make the whole node look unhealthy.
	d.health.Updated()
	if partial {
		// The runner retries with backoff; the dataplane retries the failed
		// Services in every Sync.
		d.log.Warn("some Services could not be programmed", "err", err)
		return err
	}
	// One line per sync at -v=2, as kube-proxy's "SyncProxyRules complete".
	d.log.Log(ctx, logging.V(2), "SyncProxyRules complete", "elapsed", end.Sub(start), "full", stats.Full,
		"servicePorts", snap.Len(), "changed", len(cs.Ports), "generation", snap.Generation)
	return nil
}

func (d *daemon) logResult(err error, retryIn time.Duration) {
	if err != nil && !dataplane.IsPartial(err) {
		d.log.Error("sync failed; will retry", "err", err, "retryIn", retryIn)
	}
}
