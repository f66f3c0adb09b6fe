package kube

import (
	"context"
	"time"
)

// probeInterval is how often the API server is asked whether it answers.
const probeInterval = 5 * time.Second

// probeAPIServer asks the API server for its version every probeInterval until
// ctx ends. client-go's reflector retries a refused re-watch quietly (at V(4),
// without calling the watch error handler), so an API server that went away
// would otherwise leave nothing in the log: the first failure, and each new
// cause, is logged at error level and marks every watch broken (OnWatchError,
// /healthz); each watch logs "watch restored" once it has listed or watched
// again, and the probe says when the server answers again.
func (s *Source) probeAPIServer(ctx context.Context, watches []*watchState) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	down, last := false, ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.probe(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			if !down || err.Error() != last {
				s.log.Error("API server unreachable: failed to list or watch; the last known Services keep being served", "err", err)
			}
			down, last = true, err.Error()
			for _, w := range watches {
				w.failed(ctx, err)
			}
		case down:
			s.log.Info("API server answers again; watches re-list")
			down, last = false, ""
		}
	}
}

// probe GETs /version (allowed to every client by system:public-info-viewer).
func (s *Source) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return s.opts.Client.Version(ctx)
}
