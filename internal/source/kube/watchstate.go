package kube

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
)

// restoreCheckInterval is how often a broken watch is checked for recovery.
const restoreCheckInterval = time.Second

// watchState follows one informer's watch: client-go logs each failure (through
// klog, at error level); this tells OnWatchError, and once the reflector has
// listed or watched again (its resource version moved), logs that the watch is
// restored and tells OnWatchRestored.
type watchState struct {
	s      *Source
	inf    cache.SharedIndexInformer
	kind   string
	broken atomic.Bool
}

// routine says whether err is part of a watch's normal life: a closed stream or
// an expired resource version, which the reflector handles by re-listing.
func routine(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

func (w *watchState) failed(ctx context.Context, err error) {
	if routine(err) {
		return
	}
	if w.s.opts.OnWatchError != nil {
		w.s.opts.OnWatchError(err)
	}
	if w.broken.Swap(true) {
		return
	}
	go w.awaitRestore(ctx, w.inf.LastSyncResourceVersion())
}

func (w *watchState) awaitRestore(ctx context.Context, rv string) {
	t := time.NewTicker(restoreCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.inf.LastSyncResourceVersion() == rv {
			continue
		}
		w.broken.Store(false)
		w.s.log.Info("watch restored", "resource", w.kind)
		if w.s.opts.OnWatchRestored != nil {
			w.s.opts.OnWatchRestored()
		}
		return
	}
}
