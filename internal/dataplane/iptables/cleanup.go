package iptables

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"kproxy.dev/kproxy/internal/state"
)

// cleanupTables are the tables kproxy (or a kube-proxy in the same layout) writes.
var cleanupTables = []string{tableMangle, tableFilter, tableNAT}

// cleanupRestore computes the restore that removes every chain this layout owns
// from the tables in kernel, and every rule of other chains that jumps into them.
func cleanupRestore(kernel kernelState) *restoreBuilder {
	b := newRestoreBuilder()
	for _, t := range cleanupTables {
		kt := kernel[t]
		s := b.table(t)
		for _, name := range slices.Sorted(maps.Keys(kt)) {
			if ownedChain(name) {
				s.removeChain(name)
				continue
			}
			for _, r := range kt[name] {
				if ownedChain(jumpTarget(r)) && strings.Contains(r, "-j "+jumpTarget(r)) {
					s.deleteRule(name, r)
				}
			}
		}
	}
	return b
}

// cleanupBackend removes kproxy's chains from one backend's tables.
func cleanupBackend(ctx context.Context, r Runner) error {
	kernel, err := readKernel(ctx, r)
	if err != nil {
		return err
	}
	b := cleanupRestore(kernel)
	if b.Empty() {
		return nil
	}
	return r.Restore(ctx, b.Bytes(), true)
}

// CleanupAll removes kproxy's chains and jumps from both backends and both
// families (iptables and ip6tables), so that a node can switch modes. A backend or
// family whose tools are missing (or a kernel without IPv6) is skipped.
func CleanupAll(ctx context.Context) error {
	var errs []error
	for _, be := range []Backend{BackendNFT, BackendLegacy} {
		for _, v6 := range []bool{false, true} {
			r := ExecRunner{Backend: be, IPv6: v6}
			if countRules(ctx, r) < 0 {
				continue
			}
			if err := cleanupBackend(ctx, r); err != nil {
				errs = append(errs, fmt.Errorf("%s cleanup (%s backend): %w", r.bin(""), be, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes everything this Proxier programmed, in its own backend. The next
// Apply is a full one.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = false
	p.applied = map[state.ServicePortName]*ServiceRules{}
	return cleanupBackend(ctx, p.c.Runner)
}
