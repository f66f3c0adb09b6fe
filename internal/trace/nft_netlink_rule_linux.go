//go:build linux

package trace

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// regVal is what a register holds while a rule's expressions are decoded.
type regVal struct {
	sel    *nftSel
	bytes  int
	data   []byte
	mapped *nftStmt // a map lookup whose data lands here (for dnat)
	mask   []byte
	xor    []byte
	// prefix is set when only the first bytes of an address were loaded
	// ("ip saddr 10.244.0.0/16" loads two bytes).
	prefix int
}

type ruleDecoder struct {
	t     *nftTable
	regs  map[uint32]*regVal
	stmts []nftStmt
}

// reg normalises NFT_REG_1..4 (16 bytes each) to NFT_REG32_* numbering.
func reg(r uint32) uint32 {
	if r >= 1 && r <= 4 {
		return 8 + (r-1)*4
	}
	return r
}

func decodeRule(t *nftTable, r *nftables.Rule) *nftRule {
	d := &ruleDecoder{t: t, regs: map[uint32]*regVal{}}
	nr := &nftRule{handle: r.Handle}
	for _, e := range r.Exprs {
		if err := d.expr(e); err != nil {
			nr.problem = err.Error()
			break
		}
	}
	nr.stmts = d.stmts
	var parts []string
	for _, s := range d.stmts {
		if txt := stmtText(t, s); txt != "" {
			parts = append(parts, txt)
		}
	}
	nr.text = strings.Join(parts, " ")
	if nr.problem != "" {
		nr.text += " (" + nr.problem + ")"
	}
	return nr
}

func (d *ruleDecoder) load(r uint32, s nftSel, n int) {
	d.regs[reg(r)] = &regVal{sel: &s, bytes: n}
}

func (d *ruleDecoder) expr(e expr.Any) error {
	switch e := e.(type) {
	case *expr.Payload:
		return d.payload(e)
	case *expr.Meta:
		return d.meta(e)
	case *expr.Ct:
		if e.SourceRegister {
			d.stmts = append(d.stmts, nftStmt{op: "passive"})
			return nil
		}
		kind := map[expr.CtKey]string{expr.CtKeySTATE: "ctstate", expr.CtKeySTATUS: "ctstatus"}[e.Key]
		if kind == "" {
			return fmt.Errorf("ct key %d is not decoded", e.Key)
		}
		d.load(e.Register, nftSel{kind: kind, text: map[string]string{"ctstate": "ct state", "ctstatus": "ct status"}[kind]}, 4)
	case *expr.Bitwise:
		src := d.regs[reg(e.SourceRegister)]
		if src == nil {
			return fmt.Errorf("bitwise on an empty register")
		}
		v := *src
		v.mask, v.xor = e.Mask, e.Xor
		d.regs[reg(e.DestRegister)] = &v
	case *expr.Cmp:
		return d.cmp(e)
	case *expr.Range:
		v := d.regs[reg(e.Register)]
		if v == nil || v.sel == nil {
			return fmt.Errorf("range on an empty register")
		}
		lit := valueText(*v.sel, e.FromData) + "-" + valueText(*v.sel, e.ToData)
		d.stmts = append(d.stmts, nftStmt{op: "match", lhs: []nftSel{*v.sel}, lits: [][]string{{lit}}, neg: e.Op == expr.CmpOpNeq})
	case *expr.Lookup:
		return d.lookup(e)
	case *expr.Immediate:
		d.regs[reg(e.Register)] = &regVal{data: e.Data}
	case *expr.Verdict:
		d.stmts = append(d.stmts, nftStmt{op: "verdict", verdict: verdictText(e)})
	case *expr.NAT:
		return d.nat(e)
	case *expr.Masq:
		d.stmts = append(d.stmts, nftStmt{op: "masq"})
	case *expr.Redir:
		d.stmts = append(d.stmts, nftStmt{op: "dnat", dnatTo: "127.0.0.1"})
	case *expr.Reject:
		d.stmts = append(d.stmts, nftStmt{op: "verdict", verdict: "reject"})
	case *expr.Counter, *expr.Log, *expr.Notrack:
		d.stmts = append(d.stmts, nftStmt{op: "passive"})
	case *expr.Numgen:
		s := nftSel{kind: "numgen", random: e.Type == unix.NFT_NG_RANDOM, mod: uint64(e.Modulus), offset: uint64(e.Offset)}
		s.text = fmt.Sprintf("numgen %s mod %d", map[bool]string{true: "random", false: "inc"}[s.random], e.Modulus)
		d.load(e.Register, s, 4)
	case *expr.Hash:
		return d.hash(e)
	case *expr.Fib:
		if !e.ResultADDRTYPE || e.FlagDADDR == e.FlagSADDR {
			return fmt.Errorf("fib lookup is not decoded")
		}
		s := nftSel{kind: "fibdaddr", text: "fib daddr type"}
		if e.FlagSADDR {
			s = nftSel{kind: "fibsaddr", text: "fib saddr type"}
		}
		d.load(e.Register, s, 4)
	case *expr.Dynset:
		d.stmts = append(d.stmts, nftStmt{op: "update", setRef: e.SetName})
	case *expr.Match, *expr.Target:
		return fmt.Errorf("xtables extension (an iptables-nft rule) is not decoded")
	default:
		return fmt.Errorf("expression %T is not decoded", e)
	}
	return nil
}

func (d *ruleDecoder) payload(e *expr.Payload) error {
	if e.OperationType != expr.PayloadLoad {
		return fmt.Errorf("payload write is not decoded")
	}
	type key struct {
		base        expr.PayloadBase
		offset, len uint32
	}
	sels := map[key]nftSel{
		{expr.PayloadBaseNetworkHeader, 12, 4}:  {kind: "saddr", family: "ip", text: "ip saddr"},
		{expr.PayloadBaseNetworkHeader, 16, 4}:  {kind: "daddr", family: "ip", text: "ip daddr"},
		{expr.PayloadBaseNetworkHeader, 8, 16}:  {kind: "saddr", family: "ip6", text: "ip6 saddr"},
		{expr.PayloadBaseNetworkHeader, 24, 16}: {kind: "daddr", family: "ip6", text: "ip6 daddr"},
		{expr.PayloadBaseNetworkHeader, 9, 1}:   {kind: "l4proto", text: "ip protocol"},
		{expr.PayloadBaseTransportHeader, 0, 2}: {kind: "sport", text: "th sport"},
		{expr.PayloadBaseTransportHeader, 2, 2}: {kind: "dport", text: "th dport"},
	}
	s, ok := sels[key{e.Base, e.Offset, e.Len}]
	if !ok && e.Base == expr.PayloadBaseNetworkHeader && e.Len < 4 && (e.Offset == 12 || e.Offset == 16) {
		s = sels[key{e.Base, e.Offset, 4}]
		d.regs[reg(e.DestRegister)] = &regVal{sel: &s, bytes: 4, prefix: int(e.Len) * 8}
		return nil
	}
	if !ok {
		return fmt.Errorf("payload base %d offset %d length %d is not decoded", e.Base, e.Offset, e.Len)
	}
	d.load(e.DestRegister, s, int(e.Len))
	return nil
}

func (d *ruleDecoder) meta(e *expr.Meta) error {
	if e.SourceRegister {
		if e.Key != expr.MetaKeyMARK {
			d.stmts = append(d.stmts, nftStmt{op: "passive"})
			return nil
		}
		v := d.regs[reg(e.Register)]
		switch {
		case v == nil:
			return fmt.Errorf("meta mark set from an empty register")
		case v.data != nil:
			d.stmts = append(d.stmts, nftStmt{op: "markset", markOp: "=", markVal: uint64(u32(v.data))})
		case v.mask != nil:
			d.stmts = append(d.stmts, nftStmt{op: "markset", markOp: "x", markMask: uint64(u32(v.mask)), markVal: uint64(u32(v.xor))})
		default:
			return fmt.Errorf("meta mark set is not decoded")
		}
		return nil
	}
	switch e.Key {
	case expr.MetaKeyL4PROTO:
		d.load(e.Register, nftSel{kind: "l4proto", text: "meta l4proto"}, 1)
	case expr.MetaKeyMARK:
		d.load(e.Register, nftSel{kind: "mark", text: "meta mark"}, 4)
	case expr.MetaKeyIIFNAME:
		d.load(e.Register, nftSel{kind: "iifname", text: "iifname"}, 16)
	case expr.MetaKeyNFPROTO:
		d.load(e.Register, nftSel{kind: "nfproto", text: "meta nfproto"}, 1)
	default:
		d.load(e.Register, nftSel{kind: "other", text: fmt.Sprintf("meta key %d", e.Key)}, 4)
	}
	return nil
}

func u32(b []byte) uint32 {
	if len(b) < 4 {
		b = append(append([]byte(nil), b...), make([]byte, 4-len(b))...)
	}
	return binary.NativeEndian.Uint32(b)
}

var ctStateBits = []struct {
	bit  uint32
	name string
}{{1, "invalid"}, {2, "established"}, {4, "related"}, {8, "new"}, {64, "untracked"}}

func (d *ruleDecoder) cmp(e *expr.Cmp) error {
	v := d.regs[reg(e.Register)]
	if v == nil || v.sel == nil {
		return fmt.Errorf("comparison of an empty register")
	}
	if e.Op != expr.CmpOpEq && e.Op != expr.CmpOpNeq {
		return fmt.Errorf("comparison %d is not decoded", e.Op)
	}
	s := nftStmt{op: "match", lhs: []nftSel{*v.sel}, neg: e.Op == expr.CmpOpNeq}
	switch v.sel.kind {
	case "ctstate", "ctstatus":
		bitsSet := u32(e.Data)
		if v.mask != nil {
			// "ct state new": (state & 0x8) != 0.
			bitsSet = u32(v.mask)
			s.neg = e.Op == expr.CmpOpEq
		}
		s.lits = ctLiterals(v.sel.kind, bitsSet)
	case "mark":
		if v.mask != nil {
			s.lhs[0].mask, s.lhs[0].hasMask = uint64(u32(v.mask)), true
			s.lhs[0].text += fmt.Sprintf(" & 0x%08x", u32(v.mask))
		}
		s.lits = [][]string{{fmt.Sprintf("0x%08x", u32(e.Data))}}
	case "saddr", "daddr":
		data := e.Data
		if v.prefix > 0 {
			data = append(append([]byte(nil), data...), make([]byte, 4-len(data))...)
		}
		lit := valueText(*v.sel, data)
		if v.prefix > 0 {
			lit += fmt.Sprintf("/%d", v.prefix)
		} else if v.mask != nil {
			n := 0
			for _, b := range v.mask {
				n += bits.OnesCount8(b)
			}
			lit += fmt.Sprintf("/%d", n)
		}
		s.lits = [][]string{{lit}}
	default:
		s.lits = [][]string{{valueText(*v.sel, e.Data)}}
	}
	d.stmts = append(d.stmts, s)
	return nil
}

func ctLiterals(kind string, set uint32) [][]string {
	var out [][]string
	if kind == "ctstatus" {
		if set&0x20 != 0 {
			out = append(out, []string{"dnat"})
		}
		if set&0x10 != 0 {
			out = append(out, []string{"snat"})
		}
		return out
	}
	for _, b := range ctStateBits {
		if set&b.bit != 0 {
			out = append(out, []string{b.name})
		}
	}
	return out
}

// valueText writes register data the way nft list writes the selector's values.
func valueText(s nftSel, b []byte) string {
	switch s.kind {
	case "saddr", "daddr":
		if a, ok := netip.AddrFromSlice(b); ok {
			return a.String()
		}
	case "l4proto":
		if len(b) >= 1 {
			return protoName(b[0])
		}
	case "dport", "sport":
		if len(b) >= 2 {
			return fmt.Sprint(binary.BigEndian.Uint16(b))
		}
	case "fibdaddr", "fibsaddr":
		switch u32(b) {
		case unix.RTN_LOCAL:
			return "local"
		case unix.RTN_UNICAST:
			return "unicast"
		case unix.RTN_BROADCAST:
			return "broadcast"
		case unix.RTN_MULTICAST:
			return "multicast"
		}
	case "iifname":
		return strings.TrimRight(string(b), "\x00")
	case "nfproto":
		switch {
		case len(b) >= 1 && b[0] == unix.NFPROTO_IPV4:
			return "ipv4"
		case len(b) >= 1 && b[0] == unix.NFPROTO_IPV6:
			return "ipv6"
		}
	}
	return fmt.Sprintf("0x%x", b)
}

// concat collects the selectors loaded from register r on: n fields, or until
// size bytes are covered, or (both 0) every consecutive loaded register.
func (d *ruleDecoder) concat(r uint32, n, size int) ([]nftSel, error) {
	var out []nftSel
	covered := 0
	for at := reg(r); ; {
		if (n > 0 && len(out) >= n) || (size > 0 && covered >= size) {
			break
		}
		v := d.regs[at]
		if v == nil || v.sel == nil {
			if n == 0 && size == 0 && len(out) > 0 {
				break
			}
			return nil, fmt.Errorf("lookup key in an empty register")
		}
		s := *v.sel
		if v.mask != nil && s.kind == "mark" {
			s.mask, s.hasMask = uint64(u32(v.mask)), true
		}
		out = append(out, s)
		covered += (v.bytes + 3) / 4 * 4
		at += uint32((v.bytes + 3) / 4)
	}
	return out, nil
}

func (d *ruleDecoder) lookup(e *expr.Lookup) error {
	set := d.t.sets[e.SetName]
	size := 0
	if set != nil && set.raw != nil && len(set.raw.elems) > 0 {
		size = len(set.raw.elems[0].key)
	}
	lhs, err := d.concat(e.SourceRegister, 0, size)
	if err != nil {
		return err
	}
	switch {
	case e.IsDestRegSet && e.DestRegister == 0:
		d.decodeSet(set, lhs, nil)
		d.stmts = append(d.stmts, nftStmt{op: "vmap", lhs: lhs, setRef: e.SetName})
	case e.IsDestRegSet:
		addr := "addr4"
		if d.t.family == "ip6" {
			addr = "addr6"
		}
		d.decodeSet(set, lhs, []string{addr, "port"})
		d.regs[reg(e.DestRegister)] = &regVal{mapped: &nftStmt{op: "dnat", lhs: lhs, setRef: e.SetName}}
	default:
		d.decodeSet(set, lhs, nil)
		d.stmts = append(d.stmts, nftStmt{op: "match", lhs: lhs, setRef: e.SetName, neg: e.Invert})
	}
	return nil
}

func (d *ruleDecoder) decodeSet(set *nftSet, lhs []nftSel, data []string) {
	if set != nil {
		decodeElements(set, lhs, data)
	}
}

func (d *ruleDecoder) hash(e *expr.Hash) error {
	s := nftSel{kind: "jhash", mod: uint64(e.Modulus), seed: e.Seed, offset: uint64(e.Offset)}
	if e.Type == expr.HashTypeJenkins {
		inner, err := d.concat(e.SourceRegister, 0, int(e.Length))
		if err != nil {
			return err
		}
		s.hashOf = inner
	}
	var names []string
	for _, h := range s.hashOf {
		names = append(names, h.text)
	}
	s.text = fmt.Sprintf("jhash %s mod %d seed 0x%x", strings.Join(names, " . "), e.Modulus, e.Seed)
	d.load(e.DestRegister, s, 4)
	return nil
}

func (d *ruleDecoder) nat(e *expr.NAT) error {
	if e.Type != expr.NATTypeDestNAT {
		d.stmts = append(d.stmts, nftStmt{op: "masq"}) // snat: the source is rewritten
		return nil
	}
	addr := d.regs[reg(e.RegAddrMin)]
	switch {
	case addr == nil:
		return fmt.Errorf("dnat from an empty register")
	case addr.mapped != nil:
		d.stmts = append(d.stmts, *addr.mapped)
	case addr.data != nil:
		a, ok := netip.AddrFromSlice(addr.data)
		if !ok {
			return fmt.Errorf("dnat address %x", addr.data)
		}
		to := a.String()
		if p := d.regs[reg(e.RegProtoMin)]; e.RegProtoMin != 0 && p != nil && len(p.data) >= 2 {
			to = netip.AddrPortFrom(a, binary.BigEndian.Uint16(p.data)).String()
		}
		d.stmts = append(d.stmts, nftStmt{op: "dnat", dnatTo: to})
	default:
		return fmt.Errorf("dnat is not decoded")
	}
	return nil
}
