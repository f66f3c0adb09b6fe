//go:build linux

package trace

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// NetlinkTable is one table as read over netlink: what DecodeNetlink needs.
type NetlinkTable struct {
	Table    *nftables.Table
	Chains   []*nftables.Chain
	Rules    map[string][]*nftables.Rule // by chain name
	Sets     []*nftables.Set
	Elements map[string][]nftables.SetElement // by set name
}

// DecodeNetlink turns tables read over netlink into the model TraceNftRuleset
// evaluates. Rules with expressions it does not know keep a problem: they are
// reported and assumed not to match, as with text the parser does not know.
func DecodeNetlink(tables []NetlinkTable) *NftRuleset {
	out := &NftRuleset{rs: &nftRuleset{}}
	for _, nt := range tables {
		fam := familyName(nt.Table.Family)
		if fam == "" {
			continue
		}
		t := &nftTable{family: fam, name: nt.Table.Name, chains: map[string]*nftChain{}, sets: map[string]*nftSet{}}
		out.rs.tables = append(out.rs.tables, t)
		for _, s := range nt.Sets {
			t.sets[s.Name] = decodeSet(s, nt.Elements[s.Name])
		}
		for _, c := range nt.Chains {
			ch := decodeChain(t, c)
			for _, r := range nt.Rules[c.Name] {
				nr := decodeRule(t, r)
				if nr.problem != "" {
					out.Undecoded++
				}
				ch.rules = append(ch.rules, nr)
			}
			t.chains[c.Name] = ch
		}
	}
	return out
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return ""
}

func decodeChain(t *nftTable, c *nftables.Chain) *nftChain {
	ch := &nftChain{table: t, name: c.Name, kind: string(c.Type)}
	if c.Hooknum != nil {
		ch.hook = map[nftables.ChainHook]string{*nftables.ChainHookPrerouting: "prerouting",
			*nftables.ChainHookInput: "input", *nftables.ChainHookForward: "forward",
			*nftables.ChainHookOutput: "output", *nftables.ChainHookPostrouting: "postrouting"}[*c.Hooknum]
	}
	if c.Priority != nil {
		ch.priority = int(*c.Priority)
	}
	ch.policy = "accept"
	if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
		ch.policy = "drop"
	}
	return ch
}

// ---- sets

// decodeSet keeps the elements raw: their fields are decoded at the first lookup,
// whose key says what the fields are.
func decodeSet(s *nftables.Set, elems []nftables.SetElement) *nftSet {
	set := &nftSet{name: s.Name, isMap: s.IsMap, elements: []nftElement{}}
	if s.HasTimeout && s.Timeout > 0 {
		set.timeout = strconv.Itoa(int(s.Timeout.Seconds())) + "s"
	}
	// google/nftables reports a verdict map's type as the key type "verdict".
	raw := &rawSet{interval: s.Interval, verdictMap: s.IsMap && s.KeyType.Name == "verdict"}
	if !raw.verdictMap {
		for _, t := range fieldTypes(s.KeyType) {
			raw.keyTypes = append(raw.keyTypes, t.Name)
		}
	}
	for _, e := range elems {
		re := rawElem{key: e.Key, keyEnd: e.KeyEnd, val: e.Val, end: e.IntervalEnd}
		if e.VerdictData != nil {
			re.verdict = verdictText(e.VerdictData)
		} else if raw.verdictMap || s.IsMap && len(e.Val) > 0 && looksLikeVerdict(e.Val) {
			re.verdict = verdictFromAttrs(e.Val)
		}
		raw.elems = append(raw.elems, re)
	}
	set.raw = raw
	return set
}

func fieldTypes(t nftables.SetDatatype) []nftables.SetDatatype {
	if els := nftables.ConcatSetTypeElements(t); len(els) > 1 {
		return els
	}
	return []nftables.SetDatatype{t}
}

// fieldKind is how a set field's bytes are written: by the selector that looks
// it up (addr4, addr6, proto, port, u32, name).
func fieldKind(s nftSel) string {
	switch s.kind {
	case "saddr", "daddr":
		if s.family == "ip6" {
			return "addr6"
		}
		return "addr4"
	case "l4proto":
		return "proto"
	case "dport", "sport":
		return "port"
	case "iifname":
		return "name"
	case "numgen", "jhash":
		return "num"
	}
	return "u32"
}

var typeKinds = map[string]string{"ipv4_addr": "addr4", "ipv6_addr": "addr6", "inet_proto": "proto",
	"inet_service": "port", "mark": "u32", "ifname": "name"}

// decodeElements decodes a netlink set's elements for a lookup keyed by sels
// (and, for a dnat map, data of dataKinds).
func decodeElements(set *nftSet, sels []nftSel, dataKinds []string) {
	raw := set.raw
	if raw == nil || raw.decoded {
		return
	}
	raw.decoded = true
	kinds := make([]string, len(sels))
	for i, s := range sels {
		kinds[i] = fieldKind(s)
	}
	if len(raw.keyTypes) == len(sels) {
		for i, t := range raw.keyTypes {
			if k, ok := typeKinds[t]; ok {
				kinds[i] = k
			}
		}
	}
	elems := raw.elems
	if raw.interval {
		elems = intervals(elems)
	} else {
		elems = append([]rawElem(nil), elems...)
		sort.SliceStable(elems, func(i, j int) bool { return bytes.Compare(elems[i].key, elems[j].key) < 0 })
	}
	for _, e := range elems {
		ne := nftElement{key: fieldsOf(e.key, kinds)}
		if len(e.keyEnd) > 0 {
			hi := fieldsOf(e.keyEnd, kinds)
			for i := range ne.key {
				if i < len(hi) && hi[i] != ne.key[i] {
					ne.key[i] += "-" + hi[i]
				}
			}
		}
		switch {
		case e.verdict != "":
			ne.verdict = e.verdict
		case dataKinds != nil:
			ne.data = fieldsOf(e.val, dataKinds)
		}
		set.elements = append(set.elements, ne)
	}
}

// intervals turns the kernel's interval representation (a start element, then an
// end element flagged as such holding last+1) into elements with keyEnd set.
func intervals(elems []rawElem) []rawElem {
	sorted := append([]rawElem(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].key, sorted[j].key) < 0 })
	var out []rawElem
	for i, e := range sorted {
		if e.end {
			continue
		}
		if len(e.keyEnd) == 0 {
			end := bytes.Repeat([]byte{0xff}, len(e.key))
			if i+1 < len(sorted) && sorted[i+1].end {
				end = decrement(sorted[i+1].key)
			}
			e.keyEnd = end
		}
		out = append(out, e)
	}
	return out
}

func decrement(b []byte) []byte {
	out := append([]byte(nil), b...)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

// fieldsOf splits key or data bytes into fields; concatenated fields are
// padded to 4 bytes each.
func fieldsOf(b []byte, kinds []string) []string {
	size := map[string]int{"addr4": 4, "addr6": 16, "proto": 1, "port": 2, "u32": 4, "num": 4, "name": 16}
	var out []string
	for _, k := range kinds {
		n := size[k]
		if n > len(b) {
			n = len(b)
		}
		out = append(out, fieldText(k, b[:n]))
		if len(kinds) > 1 {
			n = (n + 3) / 4 * 4
		}
		if n > len(b) {
			n = len(b)
		}
		b = b[n:]
	}
	return out
}

func fieldText(kind string, b []byte) string {
	switch kind {
	case "addr4", "addr6":
		if a, ok := netip.AddrFromSlice(b); ok {
			return a.String()
		}
	case "proto":
		if len(b) == 1 {
			return protoName(b[0])
		}
	case "port":
		if len(b) == 2 {
			return strconv.Itoa(int(binary.BigEndian.Uint16(b)))
		}
	case "u32":
		if len(b) == 4 {
			return fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(b))
		}
	case "num":
		if len(b) == 4 {
			return strconv.FormatUint(uint64(binary.NativeEndian.Uint32(b)), 10)
		}
	case "name":
		return string(bytes.TrimRight(b, "\x00"))
	}
	return fmt.Sprintf("0x%x", b)
}

// looksLikeVerdict says whether map data is a nested verdict attribute.
func looksLikeVerdict(b []byte) bool {
	return len(b) >= 8 && binary.NativeEndian.Uint16(b[2:])&0x7fff == 1
}

// verdictFromAttrs decodes NFTA_VERDICT_CODE / NFTA_VERDICT_CHAIN attributes.
func verdictFromAttrs(b []byte) string {
	v := &expr.Verdict{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x7fff
		if l < 4 || l > len(b) {
			break
		}
		data := b[4:l]
		switch typ {
		case 1:
			if len(data) >= 4 {
				v.Kind = expr.VerdictKind(int32(binary.BigEndian.Uint32(data)))
			}
		case 2:
			v.Chain = string(bytes.TrimRight(data, "\x00"))
		}
		b = b[min((l+3)/4*4, len(b)):]
	}
	return verdictText(v)
}

func protoName(p byte) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 1:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}

func verdictText(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	}
	return "continue"
}
