package state

import (
	"hash/maphash"
	"math/bits"
)

// portIndex is the Tracker's persistent map from ServicePortName to a port's spec
// and endpoints: a hash array mapped trie (32 children per level) whose nodes are
// never modified once a snapshot holding them is handed out. A new snapshot copies
// only the path from the root to each changed port (about four nodes at 100,000
// ports) and shares everything else with the one before, so folding c changes
// costs O(c log n), not a copy of the whole map (issue 16: maps.Clone of both
// snapshot maps was 38 % of a one-Service change's CPU at 50,000 Services).
type portIndex struct {
	root *ixNode
	n    int
	// gen marks the nodes this index created since it was copied from its
	// parent: those are not shared yet and are modified in place.
	gen uint64
}

// portEntry is one ServicePort and its endpoints, immutable once in an index. Its
// name is sp.Name (not copied: 64 bytes per port).
type portEntry struct {
	sp  *ServicePort
	eps []Endpoint
}

func (e *portEntry) name() ServicePortName { return e.sp.Name }

type ixNode struct {
	gen    uint64
	bitmap uint32
	// slots holds, in bit order, one slot per bit set in bitmap.
	slots []ixSlot
	// coll holds the entries whose whole hash is the same (depth maxDepth only).
	coll []*portEntry
}

// ixSlot is either a subtree or one entry.
type ixSlot struct {
	child *ixNode
	entry *portEntry
}

const (
	ixBits   = 5
	ixMask   = 1<<ixBits - 1
	maxDepth = 64 / ixBits // 12 levels of 5 bits; the 13th node is a collision list
)

var ixSeed = maphash.MakeSeed()

// hashName is a variable so that tests can force collisions.
var hashName = func(n ServicePortName) uint64 { return maphash.Comparable(ixSeed, n) }

// derive returns an index equal to ix that the caller may modify; ix stays as it is.
func (ix *portIndex) derive(gen uint64) *portIndex {
	if ix == nil {
		return &portIndex{gen: gen}
	}
	return &portIndex{root: ix.root, n: ix.n, gen: gen}
}

func (ix *portIndex) get(n ServicePortName) *portEntry {
	if ix == nil {
		return nil
	}
	h := hashName(n)
	node := ix.root
	for depth := 0; node != nil; depth++ {
		if depth == maxDepth {
			for _, e := range node.coll {
				if e.name() == n {
					return e
				}
			}
			return nil
		}
		bit := uint32(1) << (h >> (depth * ixBits) & ixMask)
		if node.bitmap&bit == 0 {
			return nil
		}
		s := node.slots[bits.OnesCount32(node.bitmap&(bit-1))]
		if s.child == nil {
			if s.entry.name() == n {
				return s.entry
			}
			return nil
		}
		node = s.child
	}
	return nil
}

// own returns node itself when this index created it, else a copy it may modify.
func (ix *portIndex) own(node *ixNode) *ixNode {
	if node == nil {
		return &ixNode{gen: ix.gen}
	}
	if node.gen == ix.gen {
		return node
	}
	c := &ixNode{gen: ix.gen, bitmap: node.bitmap}
	c.slots = append(make([]ixSlot, 0, len(node.slots)), node.slots...)
	if node.coll != nil {
		c.coll = append(make([]*portEntry, 0, len(node.coll)), node.coll...)
	}
	return c
}

// put sets the entry of e.name().
func (ix *portIndex) put(e *portEntry) {
	var added bool
	ix.root, added = ix.putAt(ix.root, e, hashName(e.name()), 0)
	if added {
		ix.n++
	}
}

func (ix *portIndex) putAt(node *ixNode, e *portEntry, h uint64, depth int) (*ixNode, bool) {
	node = ix.own(node)
	if depth == maxDepth {
		for i, old := range node.coll {
			if old.name() == e.name() {
				node.coll[i] = e
				return node, false
			}
		}
		node.coll = append(node.coll, e)
		return node, true
	}
	bit := uint32(1) << (h >> (depth * ixBits) & ixMask)
	i := bits.OnesCount32(node.bitmap & (bit - 1))
	if node.bitmap&bit == 0 {
		node.bitmap |= bit
		node.slots = append(node.slots, ixSlot{})
		copy(node.slots[i+1:], node.slots[i:])
		node.slots[i] = ixSlot{entry: e}
		return node, true
	}
	s := node.slots[i]
	switch {
	case s.child != nil:
		child, added := ix.putAt(s.child, e, h, depth+1)
		node.slots[i] = ixSlot{child: child}
		return node, added
	case s.entry.name() == e.name():
		node.slots[i] = ixSlot{entry: e}
		return node, false
	default:
		// Two entries share this slot: push both one level down.
		child, _ := ix.putAt(nil, s.entry, hashName(s.entry.name()), depth+1)
		child, _ = ix.putAt(child, e, h, depth+1)
		node.slots[i] = ixSlot{child: child}
		return node, true
	}
}

// remove deletes n's entry if there is one.
func (ix *portIndex) remove(n ServicePortName) {
	if ix.get(n) == nil {
		return
	}
	ix.root = ix.removeAt(ix.root, n, hashName(n), 0)
	ix.n--
}

// removeAt deletes n (known to be present) below node; nil means the node is empty.
func (ix *portIndex) removeAt(node *ixNode, n ServicePortName, h uint64, depth int) *ixNode {
	node = ix.own(node)
	if depth == maxDepth {
		for i, e := range node.coll {
			if e.name() == n {
				node.coll = append(node.coll[:i], node.coll[i+1:]...)
				break
			}
		}
		if len(node.coll) == 0 {
			return nil
		}
		return node
	}
	bit := uint32(1) << (h >> (depth * ixBits) & ixMask)
	i := bits.OnesCount32(node.bitmap & (bit - 1))
	if s := node.slots[i]; s.child != nil {
		child := ix.removeAt(s.child, n, h, depth+1)
		if child != nil {
			// A subtree left with one entry collapses into its parent's slot.
			if e := child.single(); e != nil {
				node.slots[i] = ixSlot{entry: e}
			} else {
				node.slots[i] = ixSlot{child: child}
			}
			return node
		}
	}
	node.bitmap &^= bit
	node.slots = append(node.slots[:i], node.slots[i+1:]...)
	if node.bitmap == 0 {
		return nil
	}
	return node
}

// single returns the node's only entry when it holds exactly one and no subtree.
func (node *ixNode) single() *portEntry {
	if len(node.coll) == 1 {
		return node.coll[0]
	}
	if len(node.slots) == 1 && node.slots[0].child == nil && node.coll == nil {
		return node.slots[0].entry
	}
	return nil
}

// each calls f for every entry until f returns false; it reports whether it finished.
func (node *ixNode) each(f func(*portEntry) bool) bool {
	if node == nil {
		return true
	}
	for _, e := range node.coll {
		if !f(e) {
			return false
		}
	}
	for _, s := range node.slots {
		if s.child != nil {
			if !s.child.each(f) {
				return false
			}
		} else if !f(s.entry) {
			return false
		}
	}
	return true
}
