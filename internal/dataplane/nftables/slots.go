package nftables

import (
	"net/netip"
	"slices"

	"kproxy.dev/kproxy/internal/state"
)

// Slots of a large shared-path Service. Such a Service (more than maxSharedPick
// live endpoints) is a few fixed elements and one group of elements per endpoint
// slot: its ClusterIP's (and each external address's, and its NodePort's) slot in
// the data maps, and the endpoint's hairpin pair. Its pick chain says "mod n", so
// which endpoint sits in which slot does not matter to traffic.
//
// A change of a few of its endpoints is rendered by renderServiceUpdate from the
// applied fragment: endpoints that stay keep their slot, a new endpoint takes the
// slot of a removed one (or a new slot at the end), and when the Service shrinks
// the endpoints of the last slots move into the holes. Only the groups of those
// slots are rewritten, so the elements written and the model work grow with the
// change, not with the Service (issue 16). A fresh render numbers the slots in
// endpoint order, which can differ from the order a run of updates left.

// slotShape is what one slot's group of elements is made of.
type slotShape struct {
	clusterIP netip.Addr
	external  []netip.Addr
	proto     l4
	port      uint16
	nodePort  uint16
}

func newSlotShape(p servicePort) slotShape {
	return slotShape{clusterIP: p.clusterIP, external: p.external, proto: l4Of(p.sp.Protocol),
		port: uint16(p.sp.Port), nodePort: uint16(p.sp.NodePort)}
}

// width is the number of elements in one slot's group.
func (s slotShape) width() int {
	w := 2 + len(s.external) // ClusterIP slot, external slots, hairpin pair
	if s.nodePort != 0 {
		w++
	}
	return w
}

func (s slotShape) equal(o slotShape) bool {
	return s.clusterIP == o.clusterIP && s.proto == o.proto && s.port == o.port && s.nodePort == o.nodePort &&
		slices.Equal(s.external, o.external)
}

// appendSlot appends slot i's group of elements, sending it to the endpoint to.
func (s slotShape) appendSlot(es []elem, i uint32, to netip.AddrPort) []elem {
	es = append(es, elemSpec{set: mapServiceEndpoints, addr: s.clusterIP, proto: s.proto, port: s.port, slot: true, index: i, to: to}.elem())
	for _, a := range s.external {
		es = append(es, elemSpec{set: mapServiceEndpoints, addr: a, proto: s.proto, port: s.port, slot: true, index: i, to: to}.elem())
	}
	if s.nodePort != 0 {
		es = append(es, elemSpec{set: mapNodePortEndpoints, proto: s.proto, port: s.nodePort, slot: true, index: i, to: to}.elem())
	}
	return append(es, pairElem(setHairpin, to.Addr(), to.Addr()))
}

// slotLayout is kept with a large shared-path Service's fragment: where its slot
// groups start, their shape, and (built on the first update) each endpoint's slot.
type slotLayout struct {
	fixed int
	shape slotShape
	at    map[netip.AddrPort]int
}

// slotCount is the number of slots in fr, which has a layout.
func (fr *fragment) slotCount() int { return (len(fr.elems) - fr.slots.fixed) / fr.slots.shape.width() }

// slotTarget is the endpoint of slot i.
func (fr *fragment) slotTarget(i int) netip.AddrPort {
	return fr.elems[fr.slots.fixed+i*fr.slots.shape.width()].to()
}

// elemDelta is the element difference an update computed itself, instead of a diff
// of all the fragment's elements.
type elemDelta struct {
	del, add []elem
}

// renderServiceUpdate renders a changed ServicePort. When both the applied
// fragment old and the new render are large shared-path Services that differ in
// their endpoints only, it reuses old's elements and returns, with the new
// fragment, the elements to delete and add; old's elements must not be used
// afterwards. Otherwise it is renderService, with a nil delta.
func renderServiceUpdate(o renderOptions, old *fragment, sp *state.ServicePort, cat state.Categorized) (*fragment, *elemDelta) {
	if old == nil || old.slots == nil {
		return renderService(o, sp, cat), nil
	}
	fr := &fragment{}
	p, ok := narrow(o, sp, cat)
	if !ok {
		return renderService(o, sp, cat), nil
	}
	sched := newSchedule(o, sp, fr)
	live := liveEndpoints(p.cat.Cluster)
	shape := newSlotShape(p)
	if len(live) <= maxSharedPick || !sharedPickFits(p, sched, live) || !shape.equal(old.slots.shape) {
		return renderService(o, sp, cat), nil
	}
	fr.elems = append(fr.elems, clusterIPElem(p.clusterIP))
	renderSharedFixed(o, p, len(live), fr)
	if len(fr.elems) != old.slots.fixed || !slices.Equal(fr.elems, old.elems[:old.slots.fixed]) {
		return renderService(o, sp, cat), nil
	}
	plan, ok := planSlots(old, live)
	if !ok {
		return renderService(o, sp, cat), nil
	}
	fr.elems, fr.slots = old.elems, old.slots
	return fr, fr.applySlots(plan)
}

// slotPlan is the new endpoint of each slot that changes: an invalid AddrPort
// deletes the slot (the Service shrank). gone and added are the endpoints that
// leave and join the Service.
type slotPlan struct {
	set         map[int]netip.AddrPort
	n           int // slots after the change
	gone, added []netip.AddrPort
}

// planSlots assigns live to slots, keeping every endpoint that stays where it is.
// It fails (a full render follows) when endpoints repeat.
func planSlots(old *fragment, live []state.Endpoint) (slotPlan, bool) {
	oldN := old.slotCount()
	at := old.slots.at
	if at == nil {
		at = make(map[netip.AddrPort]int, oldN)
		for i := range oldN {
			at[old.slotTarget(i)] = i
		}
		if len(at) != oldN {
			return slotPlan{}, false
		}
		old.slots.at = at
	}
	seen := make([]bool, oldN)
	var added []netip.AddrPort
	var fresh map[netip.AddrPort]bool
	for _, e := range live {
		ap := e.AddrPort()
		if i, ok := at[ap]; ok {
			if seen[i] {
				return slotPlan{}, false
			}
			seen[i] = true
			continue
		}
		if fresh == nil {
			fresh = map[netip.AddrPort]bool{}
		}
		if fresh[ap] {
			return slotPlan{}, false
		}
		fresh[ap] = true
		added = append(added, ap)
	}
	plan := slotPlan{set: map[int]netip.AddrPort{}, n: len(live), added: added}
	var holes []int
	for i, ok := range seen {
		if !ok {
			holes = append(holes, i)
			plan.gone = append(plan.gone, old.slotTarget(i))
		}
	}
	k := 0
	for ; k < len(holes) && k < len(added); k++ {
		plan.set[holes[k]] = added[k]
	}
	for i := oldN; k < len(added); k, i = k+1, i+1 {
		plan.set[i] = added[k]
	}
	// Shrinking: the endpoints of the slots past the new end fill the holes before
	// it (there are as many of each).
	top := oldN - 1
	for _, h := range holes[min(k, len(holes)):] {
		if h >= plan.n {
			break
		}
		for !seen[top] {
			top--
		}
		plan.set[h] = old.slotTarget(top)
		top--
	}
	for i := plan.n; i < oldN; i++ {
		plan.set[i] = netip.AddrPort{}
	}
	return plan, true
}

// applySlots rewrites the slot groups of fr (which has a layout) as planned, and
// returns the elements to delete and to add.
func (fr *fragment) applySlots(plan slotPlan) *elemDelta {
	l := fr.slots
	w := l.shape.width()
	oldN := fr.slotCount()
	d := &elemDelta{}
	// The hairpin pairs go with the endpoints, not with the slots.
	for _, ap := range plan.gone {
		d.del = append(d.del, pairElem(setHairpin, ap.Addr(), ap.Addr()))
		delete(l.at, ap)
	}
	for _, ap := range plan.added {
		d.add = append(d.add, pairElem(setHairpin, ap.Addr(), ap.Addr()))
	}
	for i, to := range plan.set {
		if i < oldN {
			old := fr.elems[l.fixed+i*w : l.fixed+(i+1)*w-1]
			d.del = append(d.del, old...)
		}
		if to.IsValid() {
			d.add = l.shape.appendSlot(d.add, uint32(i), to)
			d.add = d.add[:len(d.add)-1] // the hairpin pair is added above
			l.at[to] = i
		}
	}
	es := fr.elems
	if plan.n > oldN {
		es = slices.Grow(es, (plan.n-oldN)*w)[:l.fixed+plan.n*w]
	}
	for i, to := range plan.set {
		if i < plan.n {
			l.shape.appendSlot(es[:l.fixed+i*w], uint32(i), to)
		}
	}
	fr.elems = es[:l.fixed+plan.n*w]
	return d
}
