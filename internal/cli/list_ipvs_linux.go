//go:build linux

package cli

import (
	"context"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/dataplane/ipvs"
)

// `kproxy list --kernel` reads the IPVS table through the ipvs mode's own lister,
// which needs no daemon.
func init() {
	if _, ok := dataplane.KernelLister("ipvs"); ok {
		return
	}
	dataplane.RegisterKernelLister("ipvs", func(ctx context.Context) ([]dataplane.VirtualService, error) {
		l, err := ipvs.NewLister()
		if err != nil {
			return nil, err
		}
		return l.List(ctx)
	})
}
