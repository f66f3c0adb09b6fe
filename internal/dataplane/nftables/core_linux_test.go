//go:build linux

package nftables

import (
	"context"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// coreProxier drives a Proxier through the proxier core, as the daemon does.
type coreProxier struct {
	*Proxier
	core *dataplane.Core
}

func (c *coreProxier) Sync(ctx context.Context, snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, error) {
	return c.core.Sync(ctx, snap, cs)
}

func (c *coreProxier) Cleanup(ctx context.Context) error { return c.core.Cleanup(ctx) }

func newCoreProxier(o dataplane.Options) (*coreProxier, error) {
	p, err := newProxier(o)
	if err != nil {
		return nil, err
	}
	return &coreProxier{Proxier: p, core: dataplane.NewCore(p, dataplane.CoreOptions{})}, nil
}
