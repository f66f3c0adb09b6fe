package nftables

import (
	"encoding/binary"
	"hash/maphash"
)

// elemRef identifies an element inside its table for reference counting: 96 bits
// of two independent 64-bit hashes of the element without its value (the set's
// name and the key fields, as identity leaves them). The counts of a full sync
// cover every element (~1.4 million at 100,000 Services x 5 endpoints): keyed by
// the element text they held a string per element, keyed by [2]uint64 24 bytes a
// map slot, keyed by this 16. Two different elements share a reference only if
// all 96 bits collide: at a million elements a probability of about 10^-17.
type elemRef [3]uint32

// elemRefSeeds are per process: the counts never leave it.
var elemRefSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// refCounts counts the owners of each element (see diff.resolveRefs).
type refCounts map[elemRef]int32

// ref is the element's reference-count key; buf is scratch space it may grow.
func (e elem) ref(buf *[]byte) elemRef {
	id := e.identity()
	b := append((*buf)[:0], id.set()...)
	b = append(b, 0)
	b = append(b, id.a[:]...)
	b = append(b, id.b[:]...)
	b = binary.LittleEndian.AppendUint32(b, id.index)
	b = binary.LittleEndian.AppendUint16(b, id.port)
	slot := byte(0)
	if id.slot {
		slot = 1
	}
	b = append(b, byte(id.proto), slot, byte(id.flags))
	*buf = b
	h1, h2 := maphash.Bytes(elemRefSeeds[0], b), maphash.Bytes(elemRefSeeds[1], b)
	return elemRef{uint32(h1), uint32(h1 >> 32), uint32(h2)}
}
