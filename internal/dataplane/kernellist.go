package dataplane

import (
	"context"
	"sync"
)

// KernelListFunc lists a mode's virtual-server table straight from the kernel,
// without a running daemon (`kproxy list --kernel`).
type KernelListFunc func(ctx context.Context) ([]VirtualService, error)

var (
	kernelListMu sync.RWMutex
	kernelLists  = map[string]KernelListFunc{}
)

// RegisterKernelLister makes `kproxy list --kernel --mode NAME` work. The ipvs mode
// calls it from init; a later registration for the same mode replaces the earlier.
func RegisterKernelLister(mode string, f KernelListFunc) {
	kernelListMu.Lock()
	defer kernelListMu.Unlock()
	kernelLists[mode] = f
}

// KernelLister returns the registered kernel lister of a mode.
func KernelLister(mode string) (KernelListFunc, bool) {
	kernelListMu.RLock()
	defer kernelListMu.RUnlock()
	f, ok := kernelLists[mode]
	return f, ok
}
