// Package benchmem measures the heap a benchmark keeps alive. Test support only:
// never linked into the kproxy binary.
package benchmem

import "runtime"

// LiveHeap is the heap in use right after a collection: what is still reachable.
func LiveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
