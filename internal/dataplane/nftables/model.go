package nftables

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"unique"

	v1 "k8s.io/api/core/v1"
)

// family is one of the two tables kproxy owns: "ip kproxy" or "ip6 kproxy".
type family struct {
	name     string // nft family keyword: "ip" or "ip6"
	addrType string // nft datatype of an address: "ipv4_addr" or "ipv6_addr"
	addrLen  int    // bytes in an address
	ipv6     bool
}

var (
	familyIPv4 = family{name: "ip", addrType: "ipv4_addr", addrLen: 4}
	familyIPv6 = family{name: "ip6", addrType: "ipv6_addr", addrLen: 16, ipv6: true}
)

func (f family) matches(a netip.Addr) bool { return a.Is6() == f.ipv6 && !a.Is4In6() }

// tableName is the one table per family kproxy owns. It is API (see README.md).
const tableName = "kproxy"

// hook is a base chain's netfilter hook.
type hook struct {
	chainType string // "nat" or "filter"
	hook      string // "prerouting", "input", "forward", "output", "postrouting"
	priority  int
}

// chain is one nftables chain and its rules in order.
type chain struct {
	name  string
	base  *hook // nil for a regular chain
	rules []rule
	// sum is the digest of the rules as the kernel lists them, computed once by the
	// self-check (digest_linux.go): a rendered chain is never modified.
	sum ruleSum
}

// ruleSum digests a sequence: how many items and an order-sensitive hash of them.
type ruleSum struct {
	n    int
	h    uint64
	done bool
}

// add folds one item into the sum.
func (s *ruleSum) add(b []byte) {
	if s.n == 0 {
		s.h = fnvBasis
	}
	s.h = fnvAdd(fnvAdd(s.h, []byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}), b)
	s.n++
}

const fnvBasis = 14695981039346656037

// fnvAdd continues an FNV-1a hash over b.
func fnvAdd(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// rule is a list of statements; the last one usually carries the verdict.
type rule []stmt

func (r rule) text() string {
	parts := make([]string, len(r))
	for i, s := range r {
		parts[i] = s.text()
	}
	return strings.Join(parts, " ")
}

// setKind says what a named set or map holds.
type setKind int

const (
	// kindServiceKey: addr . inet_proto . inet_service : verdict
	kindServiceKey setKind = iota
	// kindPortKey: inet_proto . inet_service : verdict
	kindPortKey
	// kindAddrSet: a plain address set.
	kindAddrSet
	// kindIndexMap: a 32-bit index (numgen/jhash result) : verdict
	kindIndexMap
	// kindAffinity: a dynamic address set with timeouts, filled by the datapath.
	kindAffinity
	// kindServiceSet: addr . inet_proto . inet_service
	kindServiceSet
	// kindSlotMap: addr . inet_proto . inet_service . index : addr . inet_service
	kindSlotMap
	// kindPortSlotMap: inet_proto . inet_service . index : addr . inet_service
	kindPortSlotMap
	// kindPairSet: addr . addr
	kindPairSet
	// kindRangeSet: an interval set of addresses (ServiceCIDR prefixes).
	kindRangeSet
	// kindPortSet: inet_proto . inet_service
	kindPortSet
)

// set is a named set or verdict map.
type set struct {
	name    string
	kind    setKind
	timeout int // seconds, kindAffinity only
	// size, when not 0, is the set's declared maximum number of elements
	// (NFTA_SET_DESC_SIZE); only full syncs set it, on the shared verdict maps
	// (see verdictMapSize).
	size uint32
}

// def is how the set is declared, used to notice a changed declaration.
func (s *set) def(f family) string {
	switch s.kind {
	case kindServiceKey:
		return "type " + f.addrType + " . inet_proto . inet_service : verdict"
	case kindPortKey:
		return "type inet_proto . inet_service : verdict"
	case kindAddrSet:
		return "type " + f.addrType
	case kindIndexMap:
		return "type mark : verdict"
	case kindAffinity:
		return fmt.Sprintf("type %s\n\t\tflags dynamic,timeout\n\t\ttimeout %ds", f.addrType, s.timeout)
	case kindServiceSet:
		return "type " + f.addrType + " . inet_proto . inet_service"
	case kindPortSet:
		return "type inet_proto . inet_service"
	case kindSlotMap:
		return fmt.Sprintf("typeof %s daddr . meta l4proto . th dport . numgen random mod 2 : %s daddr . th dport", f.name, f.name)
	case kindPortSlotMap:
		return fmt.Sprintf("typeof meta l4proto . th dport . numgen random mod 2 : %s daddr . th dport", f.name)
	case kindPairSet:
		return "type " + f.addrType + " . " + f.addrType
	case kindRangeSet:
		return "type " + f.addrType + "\n\t\tflags interval"
	}
	return ""
}

// elem is one element of a named set or map, packed: the model holds every
// element until the next full sync (~91,000 at 10,000 Services x 3 endpoints,
// ~1.4 million at 100,000 x 5), so its size is most of the model's (issue 16).
// 64 bytes, 128 as plain fields (elemSpec): the set name and the verdict are
// interned handles (8 bytes each instead of 16-byte strings), an address is its
// 16 bytes and a 2-bit kind instead of a 24-byte netip.Addr, and the three second
// addresses an element can have (a pair set's second address, an interval's end,
// a slot map's endpoint) share one field: no element has two of them. Build one
// with elemSpec.elem; read it through the methods below. Elements are compared
// with == (equal elements are the same element and value).
type elem struct {
	setH     unique.Handle[string]
	verdictH unique.Handle[string] // zero: no verdict (plain sets, data maps)
	a, b     [16]byte              // addr; addr2 or the endpoint's address (flags say which)
	index    uint32
	port     uint16
	toPort   uint16
	proto    l4
	// slot puts index into the key after protocol and port (slot maps).
	slot  bool
	flags elemFlags
}

// elemFlags says which of an elem's addresses are set and what b is.
type elemFlags uint8

const (
	// aKind and bKind: 0 none, 1 IPv4 (the last 4 bytes), 2 IPv6.
	aKindShift, bKindShift = 0, 2
	kindMask               = 3
	// flagInterval: b is the last address of an interval that starts at a.
	flagInterval elemFlags = 1 << 4
	// flagTo: b and toPort are a slot map's data, the endpoint to DNAT to.
	flagTo elemFlags = 1 << 5
)

// elemSpec is an element as plain fields; exactly the fields the set kind uses
// are set. elem is its packed form.
type elemSpec struct {
	set   string
	addr  netip.Addr
	port  uint16
	proto l4
	// slot puts index into the key after protocol and port (slot maps).
	slot bool
	// interval says addr2 is the last address of an interval-set element that
	// starts at addr; otherwise a valid addr2 is the second address of a pair-set key.
	interval bool
	index    uint32
	addr2    netip.Addr
	// to is the data of a slot map: the endpoint to DNAT to.
	to netip.AddrPort
	// verdict is "goto CHAIN", "jump CHAIN", "drop"; empty for plain sets.
	verdict string
}

// elem packs s. An element with both addr2 and to is a programming error.
func (s elemSpec) elem() elem {
	e := elem{setH: unique.Make(s.set), index: s.index, port: s.port, proto: s.proto, slot: s.slot}
	if s.verdict != "" {
		e.verdictH = unique.Make(s.verdict)
	}
	var k elemFlags
	e.a, k = packAddr(s.addr)
	e.flags |= k << aKindShift
	switch {
	case s.to.IsValid() && s.addr2.IsValid():
		panic("nftables: element " + s.set + " with both a second address and an endpoint")
	case s.to.IsValid():
		e.b, k = packAddr(s.to.Addr())
		e.flags |= k<<bKindShift | flagTo
		e.toPort = s.to.Port()
	case s.addr2.IsValid():
		e.b, k = packAddr(s.addr2)
		e.flags |= k << bKindShift
	}
	if s.interval {
		e.flags |= flagInterval
	}
	return e
}

// spec unpacks e.
func (e elem) spec() elemSpec {
	return elemSpec{set: e.set(), addr: e.addr(), port: e.port, proto: e.proto, slot: e.slot,
		interval: e.interval(), index: e.index, addr2: e.addr2(), to: e.to(), verdict: e.verdict()}
}

// packAddr is a's 16 bytes and kind. Elements never hold a zone.
func packAddr(a netip.Addr) ([16]byte, elemFlags) {
	switch {
	case !a.IsValid():
		return [16]byte{}, 0
	case a.Is4():
		return a.As16(), 1
	}
	return a.As16(), 2
}

func unpackAddr(b [16]byte, kind elemFlags) netip.Addr {
	switch kind & kindMask {
	case 1:
		return netip.AddrFrom4([4]byte(b[12:]))
	case 2:
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

// set is the name of the element's set or map.
func (e elem) set() string { return e.setH.Value() }

// verdict is "goto CHAIN", "jump CHAIN", "drop"; empty for plain sets and data maps.
func (e elem) verdict() string {
	if e.verdictH == (unique.Handle[string]{}) {
		return ""
	}
	return e.verdictH.Value()
}

// addr is the key's (first) address, or the zero Addr.
func (e elem) addr() netip.Addr { return unpackAddr(e.a, e.flags>>aKindShift) }

// addr2 is a pair set's second address or an interval's end, or the zero Addr.
func (e elem) addr2() netip.Addr {
	if e.flags&flagTo != 0 {
		return netip.Addr{}
	}
	return unpackAddr(e.b, e.flags>>bKindShift)
}

// to is a slot map element's data, the endpoint to DNAT to, or the zero AddrPort.
func (e elem) to() netip.AddrPort {
	if e.flags&flagTo == 0 {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(unpackAddr(e.b, e.flags>>bKindShift), e.toPort)
}

// interval says addr2 is the last address of an interval that starts at addr.
func (e elem) interval() bool { return e.flags&flagInterval != 0 }

// identity is the element without its value (verdict or DNAT target): two elements
// with the same identity are the same kernel element, as with key.
func (e elem) identity() elem {
	e.verdictH = unique.Handle[string]{}
	if e.flags&flagTo != 0 {
		e.b, e.toPort = [16]byte{}, 0
		e.flags &^= flagTo | kindMask<<bKindShift
	}
	return e
}

// key identifies the element inside its set, for diffing.
func (e elem) key() string {
	return e.set() + "|" + e.keyText()
}

// pairElem is an element of a pair set (addr . second).
func pairElem(set string, addr, second netip.Addr) elem {
	return elemSpec{set: set, addr: addr, addr2: second}.elem()
}

// rangeElem is an element of an interval set: start to end, both included.
func rangeElem(set string, start, end netip.Addr) elem {
	return elemSpec{set: set, addr: start, addr2: end, interval: true}.elem()
}

// pair is the second address of a pair-set key, or the zero Addr.
func (e elem) pair() netip.Addr {
	if e.interval() {
		return netip.Addr{}
	}
	return e.addr2()
}

// end is the last address of an interval-set element, or the zero Addr.
func (e elem) end() netip.Addr {
	if !e.interval() {
		return netip.Addr{}
	}
	return e.addr2()
}

// l4 is an element's transport protocol; l4None for elements without one.
type l4 uint8

const (
	l4None l4 = iota
	l4TCP
	l4UDP
	l4SCTP
)

// l4Of is the element protocol of a ServicePort's (TCP, UDP or SCTP).
func l4Of(p v1.Protocol) l4 {
	switch p {
	case v1.ProtocolUDP:
		return l4UDP
	case v1.ProtocolSCTP:
		return l4SCTP
	}
	return l4TCP
}

// String is the protocol as nft writes it: "tcp", "udp", "sctp".
func (p l4) String() string { return [...]string{"", "tcp", "udp", "sctp"}[p] }

func (e elem) keyText() string {
	// Built by hand: full syncs compute this for every element.
	if e.interval() {
		return rangeText(e.addr(), e.addr2())
	}
	return string(e.appendKeyText(make([]byte, 0, 64)))
}

// appendKeyText appends keyText to b, so that a caller with a buffer of its own
// allocates nothing.
func (e elem) appendKeyText(b []byte) []byte {
	if e.interval() {
		return append(b, rangeText(e.addr(), e.addr2())...)
	}
	start := len(b)
	sep := func() {
		if len(b) > start {
			b = append(b, " . "...)
		}
	}
	if a := e.addr(); a.IsValid() {
		b = a.AppendTo(b)
	}
	if a := e.addr2(); a.IsValid() {
		sep()
		b = a.AppendTo(b)
	}
	if e.proto != l4None {
		sep()
		b = append(b, e.proto.String()...)
		b = append(b, " . "...)
		b = strconv.AppendUint(b, uint64(e.port), 10)
	}
	if e.slot {
		b = append(b, " . "...)
		b = strconv.AppendUint(b, uint64(e.index), 10)
	}
	if len(b) == start {
		return fmt.Appendf(b, "0x%08x", e.index)
	}
	return b
}

func (e elem) text() string {
	if to := e.to(); to.IsValid() {
		return fmt.Sprintf("%s : %s . %d", e.keyText(), to.Addr(), to.Port())
	}
	if e.verdictH == (unique.Handle[string]{}) {
		return e.keyText()
	}
	return e.keyText() + " : " + e.verdict()
}

// fragment is everything rendered for one owner (one ServicePort, or the node-wide
// fixed part): the unit of change tracking. Unchanged fragments are never re-sent.
type fragment struct {
	chains []*chain
	sets   []*set
	elems  []elem
	// warnings are logged once per render (e.g. a scheduler falling back).
	warnings []string
	// slots, for a large shared-path Service, says where its per-endpoint elements
	// are (slots.go); nil otherwise.
	slots *slotLayout
}

func (fr *fragment) addChain(c *chain) *chain { fr.chains = append(fr.chains, c); return c }

func (fr *fragment) ruleCount() int {
	n := 0
	for _, c := range fr.chains {
		n += len(c.rules)
	}
	return n
}

// chainText is the chain body as nft lists it, used to compare two renderings.
func (c *chain) bodyText() string {
	var b strings.Builder
	for _, r := range c.rules {
		b.WriteString(r.text())
		b.WriteByte('\n')
	}
	return b.String()
}

func sortElems(es []elem) {
	sort.Slice(es, func(i, j int) bool { return es[i].key() < es[j].key() })
}
