package trace

// jhashSlot computes `jhash ip saddr mod N seed S [offset O]` for the traced
// client, as the kernel's nft jhash expression does: Bob Jenkins' lookup3 hash of
// the 4 address bytes, scaled to [0, N). Other inputs (source ports, IPv6) are not
// known or not implemented, and the caller then treats every slot as possible.
func jhashSlot(s nftSel, f *flow) (uint64, bool) {
	if s.kind != "jhash" || len(s.hashOf) != 1 || s.hashOf[0].kind != "saddr" || !f.src.Is4() {
		return 0, false
	}
	return uint64(JhashScaled(f.src.As4(), s.seed, s.mod)) + s.offset, true
}

// JhashScaled is the kernel's nft jhash of a 4-byte key (an IPv4 address) with
// seed, scaled to [0, mod) as the kernel's reciprocal_scale does. Kernel tests use
// it to predict which slot a client hashes to.
func JhashScaled(key [4]byte, seed uint32, mod uint64) uint32 {
	return uint32(uint64(lookup3Word(key, seed)) * mod >> 32)
}

// lookup3Word is lookup3's jhash for a 4-byte key: the key is read as the kernel
// reads it (little-endian bytes), then mixed by the final rounds.
func lookup3Word(key [4]byte, seed uint32) uint32 {
	rol := func(x uint32, k uint) uint32 { return x<<k | x>>(32-k) }
	a := uint32(0xdeadbeef) + 4 + seed
	b, c := a, a
	a += uint32(key[0]) | uint32(key[1])<<8 | uint32(key[2])<<16 | uint32(key[3])<<24
	c ^= b
	c -= rol(b, 14)
	a ^= c
	a -= rol(c, 11)
	b ^= a
	b -= rol(a, 25)
	c ^= b
	c -= rol(b, 16)
	a ^= c
	a -= rol(c, 4)
	b ^= a
	b -= rol(a, 14)
	c ^= b
	c -= rol(b, 24)
	return c
}
