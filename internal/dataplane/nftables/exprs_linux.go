//go:build linux

package nftables

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// 32-bit register numbers (NFT_REG32_00 is 8); concatenated keys fill consecutive
// 32-bit registers the way nft lays them out.
const reg32Base = 8

func (f family) addrOffset(daddr bool) uint32 {
	switch {
	case f.ipv6 && daddr:
		return 24
	case f.ipv6:
		return 8
	case daddr:
		return 16
	}
	return 12
}

func (f family) nfproto() uint32 {
	if f.ipv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// regAfterAddr is the first 32-bit register after an address loaded into reg 1.
func (f family) regAfterAddr() uint32 { return reg32Base + uint32(f.addrLen/4) }

func loadAddr(f family, daddr bool, reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader,
		Offset: f.addrOffset(daddr), Len: uint32(f.addrLen)}
}

func hostU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

var protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}

// stmtExprs returns the kernel expressions of one statement.
func stmtExprs(s stmt) ([]expr.Any, error) {
	switch s := s.(type) {
	case addrMatch:
		return addrMatchExprs(s), nil
	case addrInSet:
		return []expr.Any{loadAddr(s.fam, s.daddr, 1), &expr.Lookup{SourceRegister: 1, SetName: s.set}}, nil
	case serviceVmap:
		r := s.fam.regAfterAddr()
		return []expr.Any{
			loadAddr(s.fam, true, 1),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r},
			&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: s.set},
		}, nil
	case portVmap:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: reg32Base + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: s.set},
		}, nil
	case portInSet:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: reg32Base + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.set},
		}, nil
	case fibLocal:
		return []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: s.daddr, FlagSADDR: !s.daddr, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostU32(unix.RTN_LOCAL)},
		}, nil
	case ctStateNew:
		return []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(expr.CtStateBitNEW), Xor: hostU32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: hostU32(0)},
		}, nil
	case l4proto:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNumbers[s.proto]}},
		}, nil
	case verdict:
		return []expr.Any{verdictExpr(s)}, nil
	case markOp:
		mask, xor := ^s.mark, s.mark
		if s.xor {
			mask = 0xffffffff
		}
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(mask), Xor: hostU32(xor)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
		}, nil
	case markUnset:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(s.mark), Xor: hostU32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostU32(0)},
		}, nil
	case masquerade:
		return []expr.Any{&expr.Masq{FullyRandom: true}}, nil
	case rejectStmt:
		if s.tcpReset {
			match, _ := stmtExprs(l4proto{proto: "tcp"})
			return append(match, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}), nil
		}
		// Family-specific codes: the ip and ip6 reject ignore ICMPX (inet only).
		code := uint8(3) // ICMP_PORT_UNREACH
		if s.fam.ipv6 {
			code = 4 // ICMPV6_PORT_UNREACH
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}}, nil
	case dnat:
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: s.to.Addr().AsSlice()},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, s.to.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: s.fam.nfproto(), RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}, nil
	case numgenEq:
		return []expr.Any{
			&expr.Numgen{Register: 1, Modulus: s.mod, Type: unix.NFT_NG_RANDOM},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: hostU32(0)},
		}, nil
	case selector:
		return selectorExprs(s), nil
	case slotDnat:
		return slotDnatExprs(s), nil
	case serviceInSet:
		r := s.fam.regAfterAddr()
		return []expr.Any{
			loadAddr(s.fam, true, 1),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r},
			&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.set},
		}, nil
	case ctStatusDNAT:
		return []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: hostU32(ipsDstNAT), Xor: hostU32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: hostU32(0)},
		}, nil
	case pairInSet:
		return []expr.Any{
			loadAddr(s.fam, false, 1),
			loadAddr(s.fam, true, s.fam.regAfterAddr()),
			&expr.Lookup{SourceRegister: 1, SetName: s.set},
		}, nil
	case affinityUpdate:
		return []expr.Any{
			loadAddr(s.fam, false, 1),
			&expr.Dynset{SrcRegKey: 1, SetName: s.set, Operation: unix.NFT_DYNSET_OP_UPDATE},
		}, nil
	}
	return nil, fmt.Errorf("nftables: no kernel form for statement %T", s)
}

func addrMatchExprs(s addrMatch) []expr.Any {
	op := expr.CmpOpEq
	if s.negate {
		op = expr.CmpOpNeq
	}
	out := []expr.Any{loadAddr(s.fam, s.daddr, 1)}
	if !s.prefix.IsSingleIP() {
		mask := make([]byte, s.fam.addrLen)
		for i := 0; i < s.prefix.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(s.fam.addrLen),
			Mask: mask, Xor: make([]byte, s.fam.addrLen)})
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: s.prefix.Masked().Addr().AsSlice()})
}

// slotDnatExprs lays the key out as nft does: address in reg 1, then protocol, port
// and slot in the following 32-bit registers; the map returns the endpoint address
// in reg 1 and its port in the first 32-bit register after the address.
func slotDnatExprs(s slotDnat) []expr.Any {
	var out []expr.Any
	r := uint32(reg32Base)
	if !s.nodePort {
		out = append(out, loadAddr(s.fam, true, 1))
		r = s.fam.regAfterAddr()
	}
	out = append(out,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: r},
		&expr.Payload{DestRegister: r + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Numgen{Register: r + 2, Modulus: s.mod, Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: s.set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: s.fam.nfproto(), RegAddrMin: 1, RegAddrMax: 1,
			RegProtoMin: s.fam.regAfterAddr(), RegProtoMax: s.fam.regAfterAddr(), Specified: true},
	)
	return out
}

func selectorExprs(s selector) []expr.Any {
	var out []expr.Any
	switch s.kind {
	case "jhash":
		// The key goes to 16-byte register 2 (32-bit registers 12 on), as nft does.
		length := uint32(s.fam.addrLen)
		out = append(out, loadAddr(s.fam, false, 2))
		if s.withPort {
			out = append(out, &expr.Payload{DestRegister: 12 + uint32(s.fam.addrLen/4),
				Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
			length += 4
		}
		out = append(out, &expr.Hash{SourceRegister: 2, DestRegister: 1, Length: length, Modulus: s.mod,
			Seed: s.seed, Type: expr.HashTypeJenkins})
	default:
		t := uint32(unix.NFT_NG_INCREMENTAL)
		if s.kind == "random" {
			t = unix.NFT_NG_RANDOM
		}
		out = append(out, &expr.Numgen{Register: 1, Modulus: s.mod, Type: t})
	}
	return append(out, &expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: s.set})
}

func verdictExpr(v verdict) expr.Any {
	kinds := map[string]expr.VerdictKind{"goto": expr.VerdictGoto, "jump": expr.VerdictJump,
		"return": expr.VerdictReturn, "drop": expr.VerdictDrop, "accept": expr.VerdictAccept}
	return &expr.Verdict{Kind: kinds[v.kind], Chain: v.chain}
}

func ruleExprs(r rule) ([]expr.Any, error) {
	var out []expr.Any
	for _, s := range r {
		e, err := stmtExprs(s)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	return out, nil
}

// ipsDstNAT is IPS_DST_NAT of the conntrack status bits.
const ipsDstNAT = 1 << 5
