package iptables

import "unsafe"

// arena hands out strings carved from large append-only byte chunks. Rendering
// 10,000 Services makes over 100,000 rule strings; building each in its own
// buffer cost most of the render time in allocations and GC. Bytes of a chunk are
// never written again once a string refers to them (a rule being built that does
// not fit is copied to a fresh chunk), which is what makes unsafe.String sound.
type arena struct {
	chunk []byte
	cur   spec
}

// Chunks grow from arenaFirstChunk to arenaChunk bytes, doubling: an arena that
// holds a few rules (a partial sync's, a fixed rule's own) keeps a few KiB alive
// rather than a whole chunk for as long as any of its rules is applied.
const (
	arenaFirstChunk = 4 << 10
	arenaChunk      = 256 << 10
)

// nextChunk is the size of the chunk after the current one.
func (a *arena) nextChunk() int {
	return min(arenaChunk, max(arenaFirstChunk, 2*cap(a.chunk)))
}

// begin starts a new string and returns its start offset in the current chunk.
func (a *arena) begin() int {
	if cap(a.chunk)-len(a.chunk) < 1024 {
		a.chunk = make([]byte, 0, a.nextChunk())
	}
	return len(a.chunk)
}

// reserve makes room for n more bytes of the string that started at *start,
// moving it to a fresh chunk when the current one is full.
func (a *arena) reserve(start *int, n int) {
	if len(a.chunk)+n <= cap(a.chunk) {
		return
	}
	partial := a.chunk[*start:]
	size := max(a.nextChunk(), 2*(len(partial)+n))
	fresh := make([]byte, 0, size)
	fresh = append(fresh, partial...)
	a.chunk = fresh
	*start = 0
}

// finish returns the string that started at start.
func (a *arena) finish(start int) string {
	b := a.chunk[start:]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
