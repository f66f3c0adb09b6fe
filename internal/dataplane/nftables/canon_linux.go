//go:build linux

package nftables

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// exprOfName returns an empty expression of each kind kproxy renders; others are
// left raw (and so never match a rendered rule).
func exprOfName(name string) expr.Any {
	switch name {
	case "bitwise":
		return &expr.Bitwise{}
	case "cmp":
		return &expr.Cmp{}
	case "ct":
		return &expr.Ct{}
	case "dynset":
		return &expr.Dynset{}
	case "fib":
		return &expr.Fib{}
	case "hash":
		return &expr.Hash{}
	case "immediate":
		return &expr.Immediate{}
	case "lookup":
		return &expr.Lookup{}
	case "masq":
		return &expr.Masq{}
	case "meta":
		return &expr.Meta{}
	case "nat":
		return &expr.NAT{}
	case "numgen":
		return &expr.Numgen{}
	case "payload":
		return &expr.Payload{}
	case "reject":
		return &expr.Reject{}
	}
	return nil
}

// canonicalExprs re-encodes a rule's expression list (NFTA_RULE_EXPRESSIONS) the
// way google/nftables encodes it: decoded, then marshalled again. The kernel lists
// a rule with other attribute order, flags and defaults than kproxy sent; both
// sides through this function compare equal exactly when the rules do.
func canonicalExprs(fam byte, list []byte) ([]byte, error) {
	ad, err := netlink.NewAttributeDecoder(list)
	if err != nil {
		return nil, err
	}
	var out []byte
	for ad.Next() {
		b, err := canonicalExpr(fam, ad.Bytes())
		if err != nil {
			return nil, err
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out, ad.Err()
}

func canonicalExpr(fam byte, elem []byte) ([]byte, error) {
	ad, err := netlink.NewAttributeDecoder(elem)
	if err != nil {
		return nil, err
	}
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return nil, err
	}
	e := exprOfName(name)
	if e == nil {
		return append([]byte("raw:"+name+":"), data...), nil
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, fmt.Errorf("expression %s: %w", name, err)
	}
	// A verdict is an immediate into the verdict register (as google/nftables
	// decodes it).
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		e = &expr.Verdict{}
		if err := expr.Unmarshal(fam, data, e); err != nil {
			return nil, fmt.Errorf("expression %s: %w", name, err)
		}
	}
	normalize(e)
	return expr.Marshal(fam, e)
}

// normalize rewrites what the kernel lists differently from what it was sent but
// means the same: a 32-bit register aligned on a 128-bit one is listed as the
// latter, and a NAT range's missing maximum register is listed as its minimum.
func normalize(e expr.Any) {
	v := reflect.ValueOf(e).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.Uint32 && strings.Contains(v.Type().Field(i).Name, "Reg") {
			f.SetUint(uint64(normalRegister(uint32(f.Uint()))))
		}
	}
	switch x := e.(type) {
	case *expr.NAT:
		if x.RegAddrMax == 0 {
			x.RegAddrMax = x.RegAddrMin
		}
		if x.RegProtoMax == 0 {
			x.RegProtoMax = x.RegProtoMin
		}
	case *expr.Masq:
		if x.RegProtoMax == 0 {
			x.RegProtoMax = x.RegProtoMin
		}
	}
}

// normalRegister maps NFT_REG32_00, _04, _08 and _12 to NFT_REG_1.._4, the same
// registers, as the kernel lists them.
func normalRegister(r uint32) uint32 {
	if r >= unix.NFT_REG32_00 && (r-unix.NFT_REG32_00)%4 == 0 {
		return unix.NFT_REG_1 + (r-unix.NFT_REG32_00)/4
	}
	return r
}
