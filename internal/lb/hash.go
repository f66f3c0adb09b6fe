package lb

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// The hashes are fixed (no random seed) so that every node running kproxy maps a
// client to the same backend, which is what makes dh, sh and mh useful across nodes.

// fold reduces an address to 32 bits like the kernel's ip_vs_addr_fold: IPv6 words
// are XORed together.
func fold(a netip.Addr) uint32 {
	if a.Is4() || a.Is4In6() {
		b := a.Unmap().As4()
		return binary.BigEndian.Uint32(b[:])
	}
	b := a.As16()
	return binary.BigEndian.Uint32(b[0:]) ^ binary.BigEndian.Uint32(b[4:]) ^
		binary.BigEndian.Uint32(b[8:]) ^ binary.BigEndian.Uint32(b[12:])
}

// bucketHash spreads a 32-bit key over 2^tabBits buckets by Fibonacci hashing, as the
// kernel's hash_32 does; consecutive client addresses land evenly.
func bucketHash(key uint32, tabBits uint) uint32 {
	return (key * 0x9e3779b9) >> (32 - tabBits)
}

// mix64 is a strong 64-bit finaliser (splitmix64) for Maglev, whose permutations
// need independent-looking offsets and skips.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// addrPortHash hashes a full address and port with a seed.
func addrPortHash(ap netip.AddrPort, withPort bool, seed uint64) uint64 {
	b := ap.Addr().Unmap().As16()
	h := mix64(seed ^ binary.BigEndian.Uint64(b[0:]))
	h = mix64(h ^ binary.BigEndian.Uint64(b[8:]))
	if withPort {
		h = mix64(h ^ uint64(ap.Port()))
	}
	return h
}

// tableBits sizes a dh/sh bucket table: the kernel's 256 buckets, grown so that every
// backend weight unit gets about four buckets when there are many backends (the
// kernel's fixed 256 would leave all but 256 backends without traffic).
func tableBits(units int) uint {
	const minBits, maxBits = 8, 20
	b := uint(bits.Len(uint(4*units - 1)))
	if units <= 0 || b < minBits {
		return minBits
	}
	if b > maxBits {
		return maxBits
	}
	return b
}
