package nftables

import "hash/maphash"

// elemRef identifies an element inside its table for reference counting: two
// independent 64-bit hashes of key(). The counts of a full sync cover every element
// (~91,000 at 10,000 Services x 3 endpoints); keyed by the text they held 5.5 MiB
// of key strings beside the map, keyed by this the map alone. Two different
// elements share a reference only if both 64-bit hashes collide, which at a million
// elements has a probability of about 10^-27.
type elemRef [2]uint64

// elemRefSeeds are per process: the counts never leave it.
var elemRefSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// refCounts counts the owners of each element (see diff.resolveRefs).
type refCounts map[elemRef]int32

// ref is the element's reference-count key; buf is scratch space it may grow.
func (e elem) ref(buf *[]byte) elemRef {
	b := append((*buf)[:0], e.set()...)
	b = append(b, '|')
	b = e.appendKeyText(b)
	*buf = b
	return elemRef{maphash.Bytes(elemRefSeeds[0], b), maphash.Bytes(elemRefSeeds[1], b)}
}
