package nftables

import (
	"fmt"
	"net/netip"
)

// stmt is one statement of a rule. text is exactly how `nft list table` prints it, so
// that what kproxy sends over netlink can be compared with what the kernel lists;
// the netlink expressions of each statement are built in exprs_linux.go.
type stmt interface{ text() string }

// addrMatch matches the source or destination address against an address or prefix.
type addrMatch struct {
	fam    family
	daddr  bool
	negate bool
	prefix netip.Prefix
}

func (s addrMatch) text() string {
	op := ""
	if s.negate {
		op = "!= "
	}
	v := s.prefix.String()
	if s.prefix.IsSingleIP() {
		v = s.prefix.Addr().String()
	}
	return fmt.Sprintf("%s %s %s%s", s.fam.name, addrField(s.daddr), op, v)
}

func addrField(daddr bool) string {
	if daddr {
		return "daddr"
	}
	return "saddr"
}

// addrInSet matches the source or destination address against a named set.
type addrInSet struct {
	fam   family
	daddr bool
	set   string
}

func (s addrInSet) text() string {
	return fmt.Sprintf("%s %s @%s", s.fam.name, addrField(s.daddr), s.set)
}

// serviceVmap dispatches on destination address, protocol and port.
type serviceVmap struct {
	fam family
	set string
}

func (s serviceVmap) text() string {
	return fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", s.fam.name, s.set)
}

// portVmap dispatches on protocol and destination port (NodePorts).
type portVmap struct{ set string }

func (s portVmap) text() string { return "meta l4proto . th dport vmap @" + s.set }

// portInSet matches protocol and destination port against a set (NodePorts).
type portInSet struct{ set string }

func (s portInSet) text() string { return "meta l4proto . th dport @" + s.set }

// fibLocal matches packets whose source or destination address is local to the node.
type fibLocal struct{ daddr bool }

func (s fibLocal) text() string { return fmt.Sprintf("fib %s type local", addrField(s.daddr)) }

// ctStateNew matches the first packet of a connection.
type ctStateNew struct{}

func (ctStateNew) text() string { return "ct state new" }

// l4proto matches the transport protocol; nft needs it before a dnat with a port.
type l4proto struct{ proto string }

func (s l4proto) text() string { return "meta l4proto " + s.proto }

// verdict ends a rule: "goto C", "jump C", "return", "drop", "accept".
type verdict struct {
	kind  string
	chain string
}

func (s verdict) text() string {
	if s.chain == "" {
		return s.kind
	}
	return s.kind + " " + s.chain
}

func gotoChain(c string) verdict { return verdict{kind: "goto", chain: c} }
func jumpChain(c string) verdict { return verdict{kind: "jump", chain: c} }

var (
	verdictReturn = verdict{kind: "return"}
	verdictDrop   = verdict{kind: "drop"}
)

// markOp changes the packet mark: or sets the masquerade bit, xor clears it.
type markOp struct {
	mark uint32
	xor  bool
}

func (s markOp) text() string {
	op := "|"
	if s.xor {
		op = "^"
	}
	return fmt.Sprintf("meta mark set meta mark %s 0x%08x", op, s.mark)
}

// markUnset matches packets without the masquerade bit.
type markUnset struct{ mark uint32 }

func (s markUnset) text() string {
	return fmt.Sprintf("meta mark & 0x%08x == 0x00000000", s.mark)
}

// masquerade SNATs to the outgoing interface's address.
type masquerade struct{}

func (masquerade) text() string { return "masquerade fully-random" }

// rejectStmt answers with ICMP port unreachable.
type rejectStmt struct {
	fam family
	// tcpReset answers TCP with a reset and matches TCP only (nft shows the protocol
	// match as implied by the statement).
	tcpReset bool
}

func (s rejectStmt) text() string {
	if s.tcpReset {
		return "reject with tcp reset"
	}
	return "reject"
}

// dnat rewrites the destination to one endpoint.
type dnat struct {
	fam family
	to  netip.AddrPort
}

func (s dnat) text() string { return "dnat to " + s.to.String() }

// numgenEq matches when a fresh random number modulo mod is zero: one step of a
// cascade that picks endpoint i of n with probability 1/(n-i) without any set.
type numgenEq struct{ mod uint32 }

func (s numgenEq) text() string { return fmt.Sprintf("numgen random mod %d 0", s.mod) }

// selector computes an index and looks it up in a per-Service verdict map.
type selector struct {
	fam family
	// kind is "random", "inc" (numgen) or "jhash".
	kind string
	mod  uint32
	// withPort hashes the source port too (mh-port).
	withPort bool
	seed     uint32
	set      string
}

func (s selector) text() string {
	switch s.kind {
	case "jhash":
		key := s.fam.name + " saddr"
		if s.withPort {
			key += " . th sport"
		}
		return fmt.Sprintf("jhash %s mod %d seed 0x%x vmap @%s", key, s.mod, s.seed, s.set)
	default:
		return fmt.Sprintf("numgen %s mod %d vmap @%s", s.kind, s.mod, s.set)
	}
}

// affinityUpdate records the client in an endpoint's affinity set.
type affinityUpdate struct {
	fam family
	set string
}

func (s affinityUpdate) text() string {
	return fmt.Sprintf("update @%s { %s saddr }", s.set, s.fam.name)
}

// slotDnat picks endpoint slot `numgen random mod n` of the Service the packet is
// addressed to and DNATs to it, all through one data map: Services sharing these
// rules never add a rule or a verdict of their own.
type slotDnat struct {
	fam      family
	nodePort bool
	mod      uint32
	set      string
}

func (s slotDnat) text() string {
	key := fmt.Sprintf("%s daddr . meta l4proto . th dport", s.fam.name)
	if s.nodePort {
		key = "meta l4proto . th dport"
	}
	return fmt.Sprintf("dnat %s to %s . numgen random mod %d map @%s", s.fam.name, key, s.mod, s.set)
}

// serviceInSet matches destination address, protocol and port against a set.
type serviceInSet struct {
	fam family
	set string
}

func (s serviceInSet) text() string {
	return fmt.Sprintf("%s daddr . meta l4proto . th dport @%s", s.fam.name, s.set)
}

// ctStatusDNAT matches connections whose destination was NATed.
type ctStatusDNAT struct{}

func (ctStatusDNAT) text() string { return "ct status dnat" }

// pairInSet matches source and destination address as a pair against a set.
type pairInSet struct {
	fam family
	set string
}

func (s pairInSet) text() string {
	return fmt.Sprintf("%s saddr . %s daddr @%s", s.fam.name, s.fam.name, s.set)
}
