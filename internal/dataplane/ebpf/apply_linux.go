//go:build linux

package ebpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batchMin is the number of entries from which a batch syscall replaces single
// updates (one bpf() call per batch instead of per entry).
const batchMin = 8

// applyOps writes a diff to the maps in the order Ops documents.
func applyOps(k *kernelMaps, o *Ops) error {
	if err := putAll(k.backends, o.BackendKeys, o.BackendVals); err != nil {
		return fmt.Errorf("map %s: %w", mapBackends, err)
	}
	if err := putAll(k.services, o.ServiceKeys, o.ServiceVals); err != nil {
		return fmt.Errorf("map %s: %w", mapServices, err)
	}
	if err := deleteAll(k.services, o.DelServices); err != nil {
		return fmt.Errorf("map %s: %w", mapServices, err)
	}
	if err := deleteAll(k.backends, o.DelBackends); err != nil {
		return fmt.Errorf("map %s: %w", mapBackends, err)
	}
	if err := sweepAffinity(k.affinity, o.AffinitySweep); err != nil {
		return fmt.Errorf("map %s: %w", mapAffinity, err)
	}
	return nil
}

// sweepAffinity deletes affinity entries of the swept Services whose backend is
// not in the kept set. It walks the whole map, and only when a Service with
// affinity changed its backends.
func sweepAffinity(m *ebpf.Map, sweep map[uint32]map[backendValue]bool) error {
	if len(sweep) == 0 {
		return nil
	}
	var k affinityKey
	var v affinityValue
	var stale []affinityKey
	it := m.Iterate()
	for it.Next(&k, &v) {
		keep, swept := sweep[k.ID]
		if swept && !keep[backendValue{Addr: v.Addr, Port: v.Port}] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return deleteAll(m, stale)
}

func putAll[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	if len(keys) >= batchMin {
		if _, err := m.BatchUpdate(keys, vals, nil); err == nil {
			return nil
		} else if !errors.Is(err, ebpf.ErrNotSupported) {
			return err
		}
	}
	for i := range keys {
		if err := m.Put(&keys[i], &vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// deleteAll deletes keys; keys already gone are fine.
func deleteAll[K any](m *ebpf.Map, keys []K) error {
	if len(keys) >= batchMin {
		if n, err := m.BatchDelete(keys, nil); err == nil {
			return nil
		} else {
			keys = keys[n:]
		}
	}
	for i := range keys {
		if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
