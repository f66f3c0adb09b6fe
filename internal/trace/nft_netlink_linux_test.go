//go:build linux

package trace

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// verdictAttrs encodes a goto verdict as the kernel nests it in map data.
func verdictAttrs(chain string) []byte {
	attr := func(typ uint16, data []byte) []byte {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	code := binary.BigEndian.AppendUint32(nil, uint32(0xfffffffc)) // NFT_GOTO
	return append(attr(1, code), attr(2, append([]byte(chain), 0))...)
}

// TestDecodeNetlink decodes what nft writes for kube-proxy's dispatch: a
// concatenated verdict map (whose key type google/nftables cannot name), a
// two-byte prefix match and a DNAT literal.
func TestDecodeNetlink(t *testing.T) {
	tbl := &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv4}
	out := &nftables.Chain{Name: "nat-output", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}
	ep := &nftables.Chain{Name: "endpoint-a", Table: tbl}
	svc := &nftables.Set{Table: tbl, Name: "service-ips", IsMap: true, KeyType: nftables.TypeVerdict}
	key := append(netip.MustParseAddr("10.96.0.10").AsSlice(), 6, 0, 0, 0, 0, 80, 0, 0)
	nt := NetlinkTable{Table: tbl, Chains: []*nftables.Chain{out, ep}, Sets: []*nftables.Set{svc},
		Elements: map[string][]nftables.SetElement{"service-ips": {{Key: key, Val: verdictAttrs("endpoint-a")}}},
		Rules: map[string][]*nftables.Rule{
			"nat-output": {{Handle: 7, Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
				&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Lookup{SourceRegister: 1, IsDestRegSet: true, SetName: "service-ips"},
			}}},
			"endpoint-a": {
				{Handle: 8, Exprs: []expr.Any{
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 2},
					&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 244}},
					&expr.Verdict{Kind: expr.VerdictAccept},
				}},
				{Handle: 9, Exprs: []expr.Any{
					&expr.Immediate{Register: 1, Data: netip.MustParseAddr("10.244.1.2").AsSlice()},
					&expr.Immediate{Register: 2, Data: []byte{0x1f, 0x90}},
					&expr.NAT{Type: expr.NATTypeDestNAT, Family: 2, RegAddrMin: 1, RegProtoMin: 2},
				}},
			},
		}}
	rs := DecodeNetlink([]NetlinkTable{nt})
	if rs.Undecoded != 0 {
		t.Fatalf("%d rules undecoded", rs.Undecoded)
	}
	texts := map[string]string{}
	for _, c := range rs.rs.tables[0].chains {
		for _, r := range c.rules {
			texts[c.name] += r.text + ";"
		}
	}
	if want := "ip daddr . meta l4proto . th dport vmap @service-ips;"; texts["nat-output"] != want {
		t.Errorf("nat-output: %q, want %q", texts["nat-output"], want)
	}
	if want := "ip saddr != 10.244.0.0/16 accept;dnat to 10.244.1.2:8080;"; texts["endpoint-a"] != want {
		t.Errorf("endpoint-a: %q, want %q", texts["endpoint-a"], want)
	}
	for src, want := range map[string]string{"192.168.1.1": "accept", "10.244.3.3": "dnat"} {
		r := TraceNftRuleset(rs, Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("10.96.0.10"),
			DPort: 80, Proto: "tcp"}, Options{})
		if r.Verdict.Kind != want {
			t.Errorf("from %s: %s (%v), want %s", src, r.Verdict.Summary, r.Notes, want)
		}
	}
}
