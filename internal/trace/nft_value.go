package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// nftVal is the value a selector takes for the traced packet.
type nftVal struct {
	kind string // addr, proto, num, str, flags
	addr netip.Addr
	num  uint64
	s    string
}

func (v nftVal) String() string {
	switch v.kind {
	case "addr":
		return v.addr.String()
	case "num":
		return strconv.FormatUint(v.num, 10)
	}
	return v.s
}

// combo is one possible value of a concatenation, with its probability; numgen
// and jhash make several.
type combo struct {
	key    []nftVal
	weight float64
	hashed bool
	random bool
}

// selValue evaluates one deterministic selector. ok=false means the selector's
// protocol dependency fails (a "tcp dport" on a UDP packet): the rule cannot match.
func (ev *nftEval) selValue(s nftSel, f *flow) (v nftVal, ok bool, why string) {
	if s.proto != "" && s.proto != f.proto {
		return v, false, ""
	}
	if s.family != "" && (s.family == "ip6") != f.dst.Is6() {
		// An ip selector in an inet table does not match IPv6 packets.
		return v, false, ""
	}
	switch s.kind {
	case "saddr":
		return nftVal{kind: "addr", addr: f.src}, true, ""
	case "daddr":
		return nftVal{kind: "addr", addr: f.dst}, true, ""
	case "l4proto":
		return nftVal{kind: "proto", s: f.proto}, true, ""
	case "dport":
		return nftVal{kind: "num", num: uint64(f.dport)}, true, ""
	case "mark":
		m := uint64(f.mark)
		if s.hasMask {
			m &= s.mask
		}
		return nftVal{kind: "num", num: m}, true, ""
	case "fibdaddr", "fibsaddr":
		a := f.dst
		if s.kind == "fibsaddr" {
			a = f.src
		}
		local, note := ev.opts.isLocal(a)
		ev.notes.add(note)
		t := "unicast"
		if local {
			t = "local"
		}
		return nftVal{kind: "str", s: t}, true, ""
	case "ctstate":
		return nftVal{kind: "flags", s: "new"}, true, ""
	case "ctstatus":
		st := ""
		if f.dnatted {
			st = "dnat"
		}
		return nftVal{kind: "flags", s: st}, true, ""
	case "iifname":
		return nftVal{kind: "str", s: f.in}, true, ""
	case "nfproto":
		fam := "ipv4"
		if f.dst.Is6() {
			fam = "ipv6"
		}
		return nftVal{kind: "str", s: fam}, true, ""
	}
	return v, true, fmt.Sprintf("%q is not evaluated", s.text)
}

// combos evaluates a concatenation into its possible values.
func (ev *nftEval) combos(sels []nftSel, f *flow) ([]combo, bool, string) {
	out := []combo{{weight: 1}}
	for _, s := range sels {
		var vals []nftVal
		hashed, random := false, false
		if slot, ok := jhashSlot(s, f); ok {
			ev.notes.add(fmt.Sprintf("%s: this client's address hashes to %d, so it always gets the same candidate", s.text, slot))
			vals = []nftVal{{kind: "num", num: slot}}
		} else if s.kind == "numgen" || s.kind == "jhash" {
			for i := uint64(0); i < s.mod; i++ {
				vals = append(vals, nftVal{kind: "num", num: i + s.offset})
			}
			hashed, random = s.kind == "jhash", s.kind == "numgen"
		} else {
			v, ok, why := ev.selValue(s, f)
			if !ok || why != "" {
				return nil, ok, why
			}
			vals = []nftVal{v}
		}
		var next []combo
		for _, c := range out {
			for _, v := range vals {
				k := append(append([]nftVal(nil), c.key...), v)
				next = append(next, combo{key: k, weight: c.weight / float64(len(vals)),
					hashed: c.hashed || hashed, random: c.random || random})
			}
		}
		out = next
	}
	return out, true, ""
}

// matchLit says whether v is matched by one literal of a rule or set element:
// an address, prefix or range, a protocol, a number or range, a string.
func matchLit(v nftVal, lit string) bool {
	lit = unquote(lit)
	switch v.kind {
	case "addr":
		if strings.Contains(lit, "/") {
			p, err := netip.ParsePrefix(lit)
			return err == nil && p.Contains(v.addr)
		}
		if lo, hi, ok := strings.Cut(lit, "-"); ok {
			l, err1 := netip.ParseAddr(lo)
			h, err2 := netip.ParseAddr(hi)
			return err1 == nil && err2 == nil && l.Compare(v.addr) <= 0 && v.addr.Compare(h) <= 0
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a == v.addr
	case "proto":
		return protoNumber(lit) == v.s
	case "num":
		if lo, hi, ok := strings.Cut(lit, "-"); ok {
			l, ok1 := parseNum(lo)
			h, ok2 := parseNum(hi)
			return ok1 && ok2 && l <= v.num && v.num <= h
		}
		n, ok := parseNum(lit)
		return ok && n == v.num
	case "flags":
		for _, f := range strings.Split(v.s, ",") {
			if f == lit {
				return true
			}
		}
		return false
	}
	if strings.HasSuffix(lit, "*") {
		return strings.HasPrefix(v.s, strings.TrimSuffix(lit, "*"))
	}
	return v.s == lit
}

func parseNum(s string) (uint64, bool) {
	if n, err := strconv.ParseUint(s, 0, 64); err == nil {
		return n, true
	}
	p, ok := portNumber(s)
	return uint64(p), ok
}

func matchKey(key []nftVal, lits []string) bool {
	if len(key) != len(lits) {
		return false
	}
	for i := range key {
		if !matchLit(key[i], lits[i]) {
			return false
		}
	}
	return true
}

func keyText(key []nftVal) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	return strings.Join(parts, " . ")
}
