package ebpf

import (
	"fmt"
	"net/netip"
	"slices"

	"kproxy.dev/kproxy/internal/state"
)

// installed is what the maps hold for one Service address.
type installed struct {
	id    uint32
	val   svcValue
	slots []backendValue
	// front is the Frontend it was written from; nil when adopted from pinned maps
	// of an earlier process (then the ServicePort is unknown until a full sync).
	front *Frontend
}

func (in *installed) endpoints() []netip.AddrPort {
	if in.front != nil {
		return in.front.Endpoints
	}
	var out []netip.AddrPort
	seen := map[backendValue]bool{}
	for _, s := range in.slots {
		if !seen[s] {
			seen[s] = true
			out = append(out, s.addrPort())
		}
	}
	return out
}

// Ops is a diff of map contents, in the order it must be applied: new backend
// slots before the Service that counts them, a shrunk Service before the slots it
// no longer counts, so the programs never read a slot that is not there.
type Ops struct {
	BackendKeys []backendKey
	BackendVals []backendValue
	ServiceKeys []svcKey
	ServiceVals []svcValue
	DelServices []svcKey
	DelBackends []backendKey
	// AffinitySweep lists Service ids whose ClientIP affinity entries must be
	// checked after the writes: entries naming a backend not in the set are
	// deleted (a nil set deletes them all), so no client stays stuck to a removed
	// backend, or to another Service's backend after the id is reused.
	AffinitySweep map[uint32]map[backendValue]bool
	// changes are applied to the Table by Commit once the kernel took the ops.
	changes []change
	// installs holds the new entries of changes, allocated together.
	installs []installed
}

// Len is the number of map entries the ops write or delete.
func (o *Ops) Len() int {
	return len(o.BackendKeys) + len(o.ServiceKeys) + len(o.DelServices) + len(o.DelBackends)
}

type change struct {
	key svcKey
	old *installed
	new *installed // nil: removed
}

// Table is the model of what the maps hold, which Plan diffs desired contents
// against. It is pure: the kernel side applies the Ops and then calls Commit.
type Table struct {
	cur    map[svcKey]*installed
	nextID uint32
	free   []uint32
	// epRef counts the frontends that use each backend, to find backends no
	// frontend uses any more (their sockets get destroyed). Keyed by the map
	// encoding, which has no pointer: half the size of netip.AddrPort's entries,
	// and nothing for the GC to scan.
	epRef   map[backendValue]int32
	orphans []backendKey
	// slots is the number of backend entries of all Services.
	slots int
	// byPort indexes the entries written from each ServicePort, so that an
	// incremental Plan visits only the changed ports' entries.
	byPort map[state.ServicePortName][]svcKey
}

// Scope says which installed entries a Plan's desired contents are authoritative
// for: all of them (a full sync), or those of the given ServicePorts.
type Scope struct {
	All   bool
	Ports map[state.ServicePortName]struct{}
}

func (s Scope) has(in *installed) bool {
	if s.All {
		return true
	}
	if in.front == nil {
		return false
	}
	_, ok := s.Ports[in.front.Port]
	return ok
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{cur: map[svcKey]*installed{}, nextID: 1, epRef: map[backendValue]int32{},
		byPort: map[state.ServicePortName][]svcKey{}}
}

// Len is the number of Service addresses in the table.
func (t *Table) Len() int { return len(t.cur) }

// Slots is the number of backends map entries the table accounts for.
func (t *Table) Slots() int { return t.slots }

// Adopt fills an empty table from map contents read back from the kernel (a
// restarted process taking pinned maps over). Backend entries of no Service are
// deleted by the next Plan.
func (t *Table) Adopt(svcs map[svcKey]svcValue, backends map[backendKey]backendValue) {
	*t = *NewTable()
	byID := map[uint32]*installed{}
	for k, v := range svcs {
		in := &installed{id: v.ID, val: v}
		t.cur[k] = in
		byID[v.ID] = in
		t.nextID = max(t.nextID, v.ID+1)
	}
	for k, v := range backends {
		in := byID[k.ID]
		if in == nil || k.Slot >= 1<<20 {
			t.orphans = append(t.orphans, k)
			continue
		}
		for uint32(len(in.slots)) <= k.Slot {
			in.slots = append(in.slots, backendValue{})
		}
		in.slots[k.Slot] = v
	}
	used := map[uint32]bool{}
	for _, in := range t.cur {
		used[in.id] = true
		t.ref(in, 1)
		t.slots += len(in.slots)
	}
	for id := uint32(1); id < t.nextID; id++ {
		if !used[id] {
			t.free = append(t.free, id)
		}
	}
}

// Plan diffs want against the table: entries in scope that are not in want are
// removed. A Frontend whose address an out-of-scope entry of another ServicePort
// holds is refused. An incremental Plan costs O(changed), not O(Services).
func (t *Table) Plan(want Desired, scope Scope) (*Ops, []error) {
	ops := &Ops{DelBackends: t.orphans}
	ops.presize(want, len(t.cur) == 0)
	var errs []error
	if scope.All {
		for k, in := range t.cur {
			if _, keep := want[k]; !keep {
				ops.remove(k, in)
			}
		}
	} else {
		for n := range scope.Ports {
			for _, k := range t.byPort[n] {
				if _, keep := want[k]; !keep {
					ops.remove(k, t.cur[k])
				}
			}
		}
	}
	pending := append([]uint32(nil), t.free...)
	next := t.nextID
	for k, f := range want {
		old := t.cur[k]
		if old != nil && !scope.has(old) && old.front != nil && old.front.Port != f.Port {
			errs = append(errs, &PortError{f.Port, fmt.Errorf("%s %s is also used by %s", protoName(k.Proto), k.addrPort(), old.front.Port)})
			continue
		}
		var id uint32
		switch {
		case old != nil:
			id = old.id
		case len(pending) > 0:
			id, pending = pending[len(pending)-1], pending[:len(pending)-1]
		default:
			id, next = next, next+1
		}
		ops.upsert(k, old, f, id)
	}
	return ops, errs
}

// presize makes room for the ops of want, so that a cold load of 10,000
// Services does not grow its slices (and the garbage) one doubling at a time.
// Into empty maps (cold) every entry is written; otherwise few change.
func (o *Ops) presize(want Desired, cold bool) {
	o.changes = make([]change, 0, len(want))
	o.installs = make([]installed, 0, len(want))
	if !cold {
		return
	}
	slots := 0
	for _, f := range want {
		slots += len(f.Slots)
	}
	o.BackendKeys = make([]backendKey, 0, slots)
	o.BackendVals = make([]backendValue, 0, slots)
	o.ServiceKeys = make([]svcKey, 0, len(want))
	o.ServiceVals = make([]svcValue, 0, len(want))
}

func (o *Ops) sweep(id uint32, keep []backendValue) {
	if o.AffinitySweep == nil {
		o.AffinitySweep = map[uint32]map[backendValue]bool{}
	}
	var set map[backendValue]bool
	if keep != nil {
		set = make(map[backendValue]bool, len(keep))
		for _, b := range keep {
			set[b] = true
		}
	}
	o.AffinitySweep[id] = set
}

func (o *Ops) remove(k svcKey, in *installed) {
	if in.val.AffinitySec > 0 {
		o.sweep(in.id, nil)
	}
	o.DelServices = append(o.DelServices, k)
	for i := range in.slots {
		o.DelBackends = append(o.DelBackends, backendKey{ID: in.id, Slot: uint32(i)})
	}
	o.changes = append(o.changes, change{key: k, old: in})
}

func (o *Ops) upsert(k svcKey, old *installed, f *Frontend, id uint32) {
	var oldSlots []backendValue
	if old != nil {
		oldSlots = old.slots
	}
	for i, s := range f.Slots {
		if i >= len(oldSlots) || oldSlots[i] != s {
			o.BackendKeys = append(o.BackendKeys, backendKey{ID: id, Slot: uint32(i)})
			o.BackendVals = append(o.BackendVals, s)
		}
	}
	for i := len(f.Slots); i < len(oldSlots); i++ {
		o.DelBackends = append(o.DelBackends, backendKey{ID: id, Slot: uint32(i)})
	}
	val := f.value(id)
	if old != nil && old.val.AffinitySec > 0 && (val.AffinitySec == 0 || !slices.Equal(old.slots, f.Slots)) {
		if val.AffinitySec == 0 {
			o.sweep(id, nil)
		} else {
			o.sweep(id, f.Slots)
		}
	}
	if old == nil || old.val != val {
		o.ServiceKeys = append(o.ServiceKeys, k)
		o.ServiceVals = append(o.ServiceVals, val)
	}
	o.installs = append(o.installs, installed{id: id, val: val, slots: f.Slots, front: f})
	o.changes = append(o.changes, change{key: k, old: old, new: &o.installs[len(o.installs)-1]})
}

// Commit records that the kernel holds what ops describe. It returns the backends
// that no Service uses any more, whose sockets should be destroyed.
func (t *Table) Commit(ops *Ops) []netip.AddrPort {
	t.orphans = nil
	if len(t.cur) == 0 && len(ops.changes) > 64 {
		// A cold load: size the indexes once instead of growing them.
		n := len(ops.changes)
		t.cur = make(map[svcKey]*installed, n)
		t.byPort = make(map[state.ServicePortName][]svcKey, n)
		t.epRef = make(map[backendValue]int32, 3*n)
	}
	// The ports' key lists start in one shared array, each capped at one key
	// (a dual-stack port's second key moves it out).
	slab := make([]svcKey, 0, len(ops.changes))
	var gone []netip.AddrPort
	for _, c := range ops.changes {
		if c.old != nil {
			t.slots -= len(c.old.slots)
			t.ref(c.old, -1)
			t.unindex(c.key, c.old)
			if c.new == nil {
				t.free = append(t.free, c.old.id)
			}
		}
		if c.new != nil {
			t.slots += len(c.new.slots)
			t.ref(c.new, 1)
			slab = t.index(c.new.front.Port, c.key, slab)
			t.cur[c.key] = c.new
			if c.new.id >= t.nextID {
				t.nextID = c.new.id + 1
			}
			t.free = removeID(t.free, c.new.id)
		} else {
			delete(t.cur, c.key)
		}
	}
	for _, c := range ops.changes {
		if c.old == nil {
			continue
		}
		for _, ep := range c.old.endpoints() {
			if n, ok := t.epRef[newBackend(ep)]; ok && n <= 0 {
				gone = append(gone, ep)
				delete(t.epRef, newBackend(ep)) // reported once
			}
		}
	}
	return gone
}

// index records that port wrote k, taking a new port's list from slab.
func (t *Table) index(port state.ServicePortName, k svcKey, slab []svcKey) []svcKey {
	keys := t.byPort[port]
	if len(keys) == 0 && len(slab) < cap(slab) {
		slab = append(slab, k)
		keys = slab[len(slab)-1 : len(slab) : len(slab)]
	} else {
		keys = append(keys, k)
	}
	t.byPort[port] = keys
	return slab
}

func (t *Table) unindex(k svcKey, in *installed) {
	if in.front == nil {
		return
	}
	keys := t.byPort[in.front.Port]
	for i, x := range keys {
		if x == k {
			keys = append(keys[:i], keys[i+1:]...)
			break
		}
	}
	if len(keys) == 0 {
		delete(t.byPort, in.front.Port)
	} else {
		t.byPort[in.front.Port] = keys
	}
}

func (t *Table) ref(in *installed, d int32) {
	for _, ep := range in.endpoints() {
		t.epRef[newBackend(ep)] += d
	}
}

func removeID(ids []uint32, id uint32) []uint32 {
	for i, x := range ids {
		if x == id {
			return append(ids[:i], ids[i+1:]...)
		}
	}
	return ids
}
