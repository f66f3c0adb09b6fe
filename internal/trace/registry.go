package trace

import (
	"context"
	"sync"
)

// Tracer traces a packet through a mode's tables on the running node. Modes whose
// tables trace cannot read itself (ebpf, for now) register one from their own
// package; `kproxy trace --mode M` uses it.
type Tracer func(ctx context.Context, p Packet, o Options) (*Result, error)

var (
	tracersMu sync.Mutex
	tracers   = map[string]Tracer{}
)

// RegisterTracer makes t the live tracer of mode.
func RegisterTracer(mode string, t Tracer) {
	tracersMu.Lock()
	defer tracersMu.Unlock()
	tracers[mode] = t
}

// LookupTracer returns the tracer registered for mode.
func LookupTracer(mode string) (Tracer, bool) {
	tracersMu.Lock()
	defer tracersMu.Unlock()
	t, ok := tracers[mode]
	return t, ok
}
