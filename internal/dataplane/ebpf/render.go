package ebpf

import (
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/lb"
	"kproxy.dev/kproxy/internal/state"
)

// Frontend is the desired content of the maps for one Service address: one entry in
// the services map and Slots in the backends map. It is what Render produces.
type Frontend struct {
	Key  svcKey
	Port state.ServicePortName
	// Sched, Flags and AffinitySec go into svcValue.
	Sched       uint8
	Flags       uint8
	AffinitySec uint32
	// Slots are the backends map entries in slot order: every endpoint once per
	// weight unit (random), or the Maglev table (mh). Empty means refuse.
	Slots []backendValue
	// Endpoints are the distinct backends, for `kproxy list` and socket destroy.
	Endpoints []netip.AddrPort
}

// value is the services map value of f under the given id.
func (f *Frontend) value(id uint32) svcValue {
	return svcValue{ID: id, Count: uint32(len(f.Slots)), Sched: f.Sched, Flags: f.Flags, AffinitySec: f.AffinitySec}
}

// PortError is a ServicePort that could not be rendered; the others still are.
type PortError struct {
	Port state.ServicePortName
	Err  error
}

func (e *PortError) Error() string { return fmt.Sprintf("service %s: %v", e.Port, e.Err) }

func (e *PortError) Unwrap() error { return e.Err }

// Desired is the content of every map, by Service address.
type Desired map[svcKey]*Frontend

// RenderOptions are the node-wide defaults of rendering.
type RenderOptions struct {
	// Scheduler is the node default when a Service names none ("" = random).
	Scheduler string
	// Endpoints categorises a port's endpoints (the core's Request.Endpoints, so
	// each port is categorised once per sync); nil means Snapshot.Categorize.
	Endpoints func(state.ServicePortName) state.Categorized
}

// Render computes the map contents of the whole snapshot. It is pure. Errors name
// the ServicePorts that could not be rendered; every other port is in Desired.
func Render(snap *state.Snapshot, o RenderOptions) (Desired, []error) {
	r := renderer{snap: snap, o: o, d: make(Desired, snap.Len())}
	for n, sp := range snap.All() {
		r.add(n, sp)
	}
	return r.d, r.errs
}

// RenderPorts computes the map contents of the named ServicePorts.
func RenderPorts(snap *state.Snapshot, names []state.ServicePortName, o RenderOptions) (Desired, []error) {
	r := renderer{snap: snap, o: o, d: make(Desired, len(names))}
	for _, n := range names {
		r.add(n, snap.Service(n))
	}
	return r.d, r.errs
}

// renderer renders ServicePorts one after the other into d, reusing its scratch
// space: a cold load renders 10,000 of them.
type renderer struct {
	snap *state.Snapshot
	o    RenderOptions
	d    Desired
	errs []error
	bs   []lb.Backend // scratch of setBackends
}

// add renders one ServicePort into d. Whatever the order of the ports, the lesser
// ServicePort keeps an address two of them claim.
func (r *renderer) add(n state.ServicePortName, sp *state.ServicePort) {
	fs, err := r.port(n, sp)
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	for i := range fs {
		f := &fs[i]
		prev, dup := r.d[f.Key]
		if !dup {
			r.d[f.Key] = f
			continue
		}
		loser := f
		if lessPort(f.Port, prev.Port) {
			r.d[f.Key], loser = f, prev
		}
		r.errs = append(r.errs, &PortError{loser.Port, fmt.Errorf("%s %s is also used by %s",
			protoName(f.Key.Proto), f.Key.addrPort(), r.d[f.Key].Port)})
	}
}

// port computes the frontends of one ServicePort: one per ClusterIP. Ports that
// socket LB does not handle (SCTP, headless) render to nothing.
func (r *renderer) port(name state.ServicePortName, sp *state.ServicePort) ([]Frontend, error) {
	if sp == nil {
		return nil, nil
	}
	proto, ok := ipProto(sp.Protocol)
	if !ok || sp.Port <= 0 || sp.Port > 65535 {
		return nil, nil
	}
	sched, flags, err := scheduler(sp, r.o)
	if err != nil {
		return nil, &PortError{name, err}
	}
	var cat state.Categorized
	if r.o.Endpoints != nil {
		cat = r.o.Endpoints(name)
	} else {
		cat = r.snap.Categorize(name)
	}
	eps := cat.Cluster
	if sp.InternalPolicyLocal {
		eps = cat.Local
	}
	// One allocation for the frontends of the port (a Desired entry points into it).
	out := make([]Frontend, 0, len(sp.ClusterIPs))
	for _, ip := range sp.ClusterIPs {
		if !ip.IsValid() || ip.IsUnspecified() {
			continue
		}
		out = append(out, Frontend{Key: newSvcKey(ip, uint16(sp.Port), proto), Port: name,
			Sched: sched, Flags: flags, AffinitySec: affinitySeconds(sp)})
		if err := r.setBackends(&out[len(out)-1], sameFamily(eps, ip.Is4())); err != nil {
			return nil, &PortError{name, err}
		}
	}
	return out, nil
}

func lessPort(a, b state.ServicePortName) bool {
	s := []state.ServicePortName{b, a}
	state.SortNames(s)
	return s[0] == a && a != b
}

func ipProto(p v1.Protocol) (uint8, bool) {
	switch p {
	case v1.ProtocolTCP:
		return protoTCP, true
	case v1.ProtocolUDP:
		return protoUDP, true
	}
	return 0, false
}

func affinitySeconds(sp *state.ServicePort) uint32 {
	if sp.AffinityTimeout <= 0 {
		return 0
	}
	s := uint64(sp.AffinityTimeout.Seconds())
	return uint32(max(1, min(s, 1<<31)))
}

// scheduler maps the kproxy.dev/scheduler annotation onto what the programs do.
// Socket LB picks once per connect() and has no connection counts, so the
// round-robin family becomes (weighted) random and the hashing family Maglev.
func scheduler(sp *state.ServicePort, o RenderOptions) (uint8, uint8, error) {
	name := sp.Scheduler
	if name == "" {
		name = o.Scheduler
	}
	var flags uint8
	if slices.Contains(sp.SchedulerFlags, "mh-port") {
		flags |= flagHashSocket
	}
	switch name {
	case "", "random", "rr", "wrr", "lc", "wlc", "sed", "nq", "twos":
		return schedRandom, flags, nil
	case "mh", "sh", "dh":
		return schedMaglev, flags, nil
	}
	return 0, 0, fmt.Errorf("field scheduler: %q is not supported by the ebpf mode (use random or mh)", name)
}

func sameFamily(eps []state.Endpoint, v4 bool) []state.Endpoint {
	all := true
	for _, e := range eps {
		all = all && e.IP.Unmap().Is4() == v4 && e.Port > 0 && e.Port <= 65535
	}
	if all {
		return eps
	}
	var out []state.Endpoint
	for _, e := range eps {
		if e.IP.Unmap().Is4() == v4 && e.Port > 0 && e.Port <= 65535 {
			out = append(out, e)
		}
	}
	return out
}

// setBackends fills f's Slots and Endpoints from the chosen endpoints.
func (r *renderer) setBackends(f *Frontend, eps []state.Endpoint) error {
	bs := r.bs[:0]
	f.Endpoints = make([]netip.AddrPort, 0, len(eps))
	seen := distinct(len(eps))
	for _, e := range eps {
		ap := netip.AddrPortFrom(e.IP.Unmap(), uint16(e.Port))
		if e.Weight < 0 || seen(f.Endpoints, ap) {
			continue
		}
		bs = append(bs, lb.Backend{Addr: ap, Weight: e.Weight})
		f.Endpoints = append(f.Endpoints, ap)
	}
	r.bs = bs
	if f.Sched == schedMaglev {
		table, err := lb.MaglevTable(bs, MaglevTableSize)
		if err != nil {
			return err
		}
		f.Slots = make([]backendValue, 0, len(table))
		for _, i := range table {
			f.Slots = append(f.Slots, newBackend(bs[i].Addr))
		}
		return nil
	}
	f.Slots = weightedSlots(bs)
	return nil
}

// distinct returns a test of whether ap is among the addresses accepted so far
// (which it then records): a scan of them for a few endpoints, a set for many.
func distinct(n int) func(accepted []netip.AddrPort, ap netip.AddrPort) bool {
	if n <= 16 {
		return func(accepted []netip.AddrPort, ap netip.AddrPort) bool { return slices.Contains(accepted, ap) }
	}
	set := make(map[netip.AddrPort]struct{}, n)
	return func(_ []netip.AddrPort, ap netip.AddrPort) bool {
		if _, ok := set[ap]; ok {
			return true
		}
		set[ap] = struct{}{}
		return false
	}
}

// weightedSlots gives each backend weight/gcd slots (at most maxSlotsPerEndpoint),
// so a uniform pick over the slots honours the weights.
func weightedSlots(bs []lb.Backend) []backendValue {
	g := 0
	for _, b := range bs {
		if b.Weight > 0 {
			g = gcd(g, b.Weight)
		}
	}
	out := make([]backendValue, 0, len(bs))
	for _, b := range bs {
		if b.Weight <= 0 {
			continue
		}
		for range min(b.Weight/g, maxSlotsPerEndpoint) {
			out = append(out, newBackend(b.Addr))
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
