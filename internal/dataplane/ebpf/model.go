package ebpf

import (
	"encoding/binary"
	"net/netip"
)

// ModeName is the --proxy-mode value.
const ModeName = "ebpf"

// Scheduler codes stored in svcValue.Sched.
const (
	schedRandom uint8 = 0
	schedMaglev uint8 = 1
)

// Flags stored in svcValue.Flags.
const (
	// flagHashSocket mixes the socket cookie into the Maglev hash (mh-port), so one
	// client spreads its connections instead of sticking to one backend.
	flagHashSocket uint8 = 1 << 0
)

// MaglevTableSize is the number of backend slots of an mh Service (a prime).
const MaglevTableSize = 1021

// maxSlotsPerEndpoint bounds the slots one weighted endpoint takes under random.
const maxSlotsPerEndpoint = 64

// The structs below are the maps' keys and values, byte for byte as the programs in
// progs_linux.go read them. Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6
// (::ffff:a.b.c.d), ports in network byte order.

// svcKey keys the services map: a Service address, port and IP protocol.
type svcKey struct {
	Addr  [16]byte
	Port  [2]byte
	Proto uint8
	Pad   uint8
}

// svcValue is one Service frontend: its id (the backends map key), the number of
// backend slots (0: refuse), scheduler, flags and ClientIP affinity timeout.
type svcValue struct {
	ID          uint32
	Count       uint32
	Sched       uint8
	Flags       uint8
	Pad         uint16
	AffinitySec uint32
}

// backendKey keys the backends map: Service id and slot.
type backendKey struct {
	ID   uint32
	Slot uint32
}

// backendValue is one backend address and port.
type backendValue struct {
	Addr [16]byte
	Port [2]byte
	Pad  [2]byte
}

// revnatKey keys the reverse-translation map: the socket that connected or sent
// through a Service, and the backend it was given.
type revnatKey struct {
	Cookie uint64
	Addr   [16]byte
	Port   [2]byte
	Pad    [6]byte
}

// affinityKey keys the ClientIP affinity map. A socket has no source address yet
// at connect(), so the client is its network namespace.
type affinityKey struct {
	NetnsCookie uint64
	ID          uint32
	Pad         uint32
}

// affinityValue is the backend a client stuck to and when it last used it
// (bpf_ktime_get_ns). The first 18 bytes have backendValue's layout.
type affinityValue struct {
	Addr [16]byte
	Port [2]byte
	Pad  [6]byte
	TS   uint64
}

// IP protocol numbers.
const (
	protoTCP uint8 = 6
	protoUDP uint8 = 17
)

func addr16(a netip.Addr) [16]byte { return a.As16() }

func port2(p uint16) (b [2]byte) {
	binary.BigEndian.PutUint16(b[:], p)
	return b
}

func newSvcKey(a netip.Addr, port uint16, proto uint8) svcKey {
	return svcKey{Addr: addr16(a), Port: port2(port), Proto: proto}
}

func newBackend(ap netip.AddrPort) backendValue {
	return backendValue{Addr: addr16(ap.Addr()), Port: port2(ap.Port())}
}

// AddrPort decodes a map address and port.
func decodeAddrPort(a [16]byte, p [2]byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), binary.BigEndian.Uint16(p[:]))
}

func (k svcKey) addrPort() netip.AddrPort { return decodeAddrPort(k.Addr, k.Port) }

func (b backendValue) addrPort() netip.AddrPort { return decodeAddrPort(b.Addr, b.Port) }

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "TCP"
	case protoUDP:
		return "UDP"
	}
	return "?"
}

func schedName(s uint8) string {
	if s == schedMaglev {
		return "mh"
	}
	return "random"
}
