// Package fakeconntrack is a stateful stand-in for the kernel's conntrack table, for
// tests: it holds flows, and Delete removes the ones a conntrack.Filter selects (the
// same conntrack.Filter.Matches the netlink deleter uses), so a test can assert both
// which filters a sync sent and that "the stale entry to the old endpoint is gone"
// while other flows survive.
package fakeconntrack

import (
	"fmt"
	"net/netip"
	"sync"

	"kproxy.dev/kproxy/internal/conntrack"
)

// Flow is one conntrack entry as the cleanup sees it: a client's flow to a Service
// address (OrigDst) that was NATed to Endpoint (the reply source).
type Flow struct {
	Protocol uint8
	Client   netip.AddrPort
	OrigDst  netip.AddrPort
	Endpoint netip.AddrPort
}

func (f Flow) String() string {
	return fmt.Sprintf("proto %d %s -> %s via %s", f.Protocol, f.Client, f.OrigDst, f.Endpoint)
}

// UDP returns a UDP flow from client to service NATed to endpoint, all "addr:port".
func UDP(client, service, endpoint string) Flow {
	return Flow{Protocol: 17, Client: netip.MustParseAddrPort(client),
		OrigDst: netip.MustParseAddrPort(service), Endpoint: netip.MustParseAddrPort(endpoint)}
}

// Table is the fake; the zero value is an empty table. It implements
// conntrack.Deleter.
type Table struct {
	mu    sync.Mutex
	flows []Flow
	calls [][]conntrack.Filter
	// Err, when set, makes Delete record the call, delete nothing and return it.
	Err error
}

var _ conntrack.Deleter = (*Table)(nil)

// Add puts flows in the table.
func (t *Table) Add(flows ...Flow) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flows = append(t.flows, flows...)
}

// Delete removes every flow that any filter matches, in the conntrack table of the
// filter's family, and returns how many it removed.
func (t *Table) Delete(filters []conntrack.Filter) (uint, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = append(t.calls, append([]conntrack.Filter(nil), filters...))
	if t.Err != nil {
		return 0, t.Err
	}
	kept := t.flows[:0]
	var n uint
	for _, fl := range t.flows {
		if matchesAny(filters, fl) {
			n++
			continue
		}
		kept = append(kept, fl)
	}
	t.flows = kept
	return n, nil
}

func matchesAny(filters []conntrack.Filter, fl Flow) bool {
	v4 := fl.OrigDst.Addr().Unmap().Is4()
	for _, f := range filters {
		if f.IPv4() == v4 && f.Matches(fl.Protocol, fl.OrigDst, fl.Endpoint) {
			return true
		}
	}
	return false
}

// Flows returns the flows still in the table.
func (t *Table) Flows() []Flow {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Flow(nil), t.flows...)
}

// Has reports whether the flow is still in the table.
func (t *Table) Has(f Flow) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, fl := range t.flows {
		if fl == f {
			return true
		}
	}
	return false
}

// Calls returns the filters of each Delete call, oldest first.
func (t *Table) Calls() [][]conntrack.Filter {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]conntrack.Filter(nil), t.calls...)
}

// ForgetCalls drops the recorded calls (the flows stay).
func (t *Table) ForgetCalls() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = nil
}

// Filters returns every filter Delete was given, in order.
func (t *Table) Filters() []conntrack.Filter {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []conntrack.Filter
	for _, c := range t.calls {
		out = append(out, c...)
	}
	return out
}
