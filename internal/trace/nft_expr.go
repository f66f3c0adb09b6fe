package trace

import (
	"fmt"
	"strconv"
	"strings"
)

// nftSel is one selector of a concatenation: "ip daddr", "th dport", "numgen
// random mod 2", ...
type nftSel struct {
	kind    string // saddr, daddr, l4proto, dport, sport, mark, fibdaddr, fibsaddr, ctstate, ctstatus, iifname, numgen, jhash, other
	proto   string // "tcp dport" also matches the protocol
	family  string // "ip" or "ip6" for address selectors
	mod     uint64
	offset  uint64
	random  bool // numgen random (else inc)
	mask    uint64
	hasMask bool
	seed    uint32
	hashOf  []nftSel // what jhash hashes
	text    string
}

// nftStmt is one statement of a rule.
type nftStmt struct {
	op      string // match, vmap, verdict, dnat, masq, markset, update, passive
	lhs     []nftSel
	neg     bool
	lits    [][]string
	setRef  string
	anon    []nftElement
	verdict string
	dnatTo  string
	markOp  string
	markVal uint64
	// markMask is the mask of markOp "x": mark = mark & markMask ^ markVal (how
	// netlink expresses every mark change).
	markMask uint64
}

type nftParser struct {
	toks []string
	pos  int
}

func (p *nftParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *nftParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *nftParser) eof() bool { return p.pos >= len(p.toks) }

func parseNftRule(line string) ([]nftStmt, error) {
	p := &nftParser{toks: nftTokens(line)}
	var out []nftStmt
	for !p.eof() {
		s, err := p.statement()
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

var selectorStarts = map[string]bool{"ip": true, "ip6": true, "meta": true, "th": true, "tcp": true,
	"udp": true, "sctp": true, "fib": true, "ct": true, "numgen": true, "jhash": true, "symhash": true,
	"mark": true, "iifname": true, "oifname": true, "iif": true, "oif": true, "l4proto": true}

var logOptions = map[string]bool{"prefix": true, "level": true, "group": true, "snaplen": true,
	"queue-threshold": true, "flags": true}

func (p *nftParser) statement() (nftStmt, error) {
	t := p.next()
	switch t {
	case "jump", "goto":
		return nftStmt{op: "verdict", verdict: t + " " + unquote(p.next())}, nil
	case "accept", "drop", "return", "continue":
		return nftStmt{op: "verdict", verdict: t}, nil
	case "reject":
		if p.peek() == "with" {
			for !p.eof() && p.peek() != "comment" {
				p.next()
			}
		}
		return nftStmt{op: "verdict", verdict: "reject"}, nil
	case "counter":
		if p.peek() == "packets" {
			p.pos += 4
		}
		return nftStmt{op: "passive"}, nil
	case "comment":
		p.next()
		return nftStmt{op: "passive"}, nil
	case "log":
		for logOptions[p.peek()] {
			p.pos += 2
		}
		return nftStmt{op: "passive"}, nil
	case "notrack":
		return nftStmt{op: "passive"}, nil
	case "masquerade", "snat":
		for !p.eof() && !isStatementStart(p.peek()) {
			p.next()
		}
		return nftStmt{op: "masq"}, nil
	case "dnat", "redirect":
		return p.dnat(t)
	case "update", "add":
		if strings.HasPrefix(p.peek(), "@") {
			name := p.next()[1:]
			p.skipBraces()
			return nftStmt{op: "update", setRef: name}, nil
		}
	}
	if !selectorStarts[t] {
		return nftStmt{}, fmt.Errorf("statement %q is not understood", t)
	}
	p.pos--
	lhs, err := p.concat()
	if err != nil {
		return nftStmt{}, err
	}
	switch p.peek() {
	case "set":
		p.next()
		return p.markSet(lhs)
	case "vmap":
		p.next()
		s := nftStmt{op: "vmap", lhs: lhs}
		err := p.rhsSet(&s)
		return s, err
	}
	s := nftStmt{op: "match", lhs: lhs}
	switch p.peek() {
	case "!=", "ne":
		s.neg = true
		p.next()
	case "==", "eq":
		p.next()
	case "<", ">", "<=", ">=", "lt", "gt", "le", "ge":
		return s, fmt.Errorf("comparison %q is not evaluated", p.peek())
	}
	if strings.HasPrefix(p.peek(), "@") || p.peek() == "{" {
		return s, p.rhsSet(&s)
	}
	s.lits = p.literals()
	if len(s.lits) == 0 {
		return s, fmt.Errorf("%s without a value", lhs[0].text)
	}
	return s, nil
}

func isStatementStart(t string) bool {
	switch t {
	case "jump", "goto", "accept", "drop", "return", "reject", "counter", "comment", "log":
		return true
	}
	return false
}

func (p *nftParser) skipBraces() {
	if p.peek() != "{" {
		return
	}
	depth := 0
	for !p.eof() {
		switch p.next() {
		case "{":
			depth++
		case "}":
			depth--
			if depth == 0 {
				return
			}
		}
	}
}

// rhsSet reads "@name" or an anonymous "{ ... }".
func (p *nftParser) rhsSet(s *nftStmt) error {
	t := p.next()
	if strings.HasPrefix(t, "@") {
		s.setRef = t[1:]
		return nil
	}
	if t != "{" {
		return fmt.Errorf("want @set or { ... }, got %q", t)
	}
	start := p.pos
	p.pos--
	p.skipBraces()
	s.anon = parseElements(strings.Join(p.toks[start:p.pos-1], " "))
	return nil
}

// literals reads "a . b . c" or "a , b" (a flag list).
func (p *nftParser) literals() [][]string {
	var out [][]string
	for !p.eof() {
		// The value right after a selector is a literal even when it reads like a
		// keyword ("meta l4proto tcp").
		if t := p.peek(); t == "{" || t == "}" || strings.HasPrefix(t, "@") {
			break
		}
		cur := []string{unquote(p.next())}
		for p.peek() == "." {
			p.next()
			cur = append(cur, unquote(p.next()))
		}
		out = append(out, cur)
		if p.peek() != "," {
			break
		}
		p.next()
	}
	return out
}

func (p *nftParser) concat() ([]nftSel, error) {
	var out []nftSel
	for {
		s, err := p.selector()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if p.peek() != "." {
			return out, nil
		}
		p.next()
	}
}

func (p *nftParser) selector() (nftSel, error) {
	start := p.pos
	t := p.next()
	s := nftSel{kind: "other"}
	switch t {
	case "ip", "ip6":
		s.family = t
		switch p.next() {
		case "saddr":
			s.kind = "saddr"
		case "daddr":
			s.kind = "daddr"
		case "protocol", "nexthdr":
			s.kind = "l4proto"
		}
	case "meta":
		s.kind = metaKind(p.next())
	case "mark", "iifname", "oifname", "iif", "oif", "l4proto":
		s.kind = metaKind(t)
	case "th", "tcp", "udp", "sctp":
		if t != "th" {
			s.proto = t
		}
		switch p.next() {
		case "dport":
			s.kind = "dport"
		case "sport":
			s.kind = "sport"
		}
	case "fib":
		which := p.next()
		for !p.eof() && p.peek() != "type" && p.peek() != "oif" {
			p.next()
		}
		p.next()
		s.kind = "fib" + which
	case "ct":
		switch p.next() {
		case "state":
			s.kind = "ctstate"
		case "status":
			s.kind = "ctstatus"
		}
	case "numgen":
		s.kind = "numgen"
		s.random = p.next() == "random"
		if err := p.modulus(&s); err != nil {
			return s, err
		}
	case "jhash", "symhash":
		s.kind = "jhash"
		if t == "jhash" {
			inner, err := p.concat()
			if err != nil {
				return s, err
			}
			s.hashOf = inner
		}
		if err := p.modulus(&s); err != nil {
			return s, err
		}
	default:
		return s, fmt.Errorf("selector %q is not understood", t)
	}
	if p.peek() == "&" {
		p.next()
		m, err := strconv.ParseUint(p.next(), 0, 64)
		if err != nil {
			return s, fmt.Errorf("mask: %v", err)
		}
		s.mask, s.hasMask = m, true
	}
	s.text = strings.Join(p.toks[start:p.pos], " ")
	return s, nil
}

func metaKind(t string) string {
	switch t {
	case "l4proto", "protocol":
		return "l4proto"
	case "mark":
		return "mark"
	case "iifname":
		return "iifname"
	case "nfproto":
		return "nfproto"
	}
	return "other"
}

// modulus reads "mod N [seed S] [offset O]".
func (p *nftParser) modulus(s *nftSel) error {
	if p.next() != "mod" {
		return fmt.Errorf("%s without mod", s.kind)
	}
	n, err := strconv.ParseUint(p.next(), 0, 32)
	if err != nil || n == 0 {
		return fmt.Errorf("%s: modulus", s.kind)
	}
	s.mod = n
	for p.peek() == "seed" || p.peek() == "offset" {
		k := p.next()
		v, err := strconv.ParseUint(p.next(), 0, 32)
		if err != nil {
			return fmt.Errorf("%s %s: %v", s.kind, k, err)
		}
		if k == "offset" {
			s.offset = v
		} else {
			s.seed = uint32(v)
		}
	}
	return nil
}

// markSet reads "meta mark set meta mark | 0x4000" (also ^ and &, or a value).
func (p *nftParser) markSet(lhs []nftSel) (nftStmt, error) {
	s := nftStmt{op: "markset"}
	if len(lhs) != 1 || lhs[0].kind != "mark" {
		// ct mark set ..., meta priority set ...: nothing trace follows.
		for !p.eof() && !isStatementStart(p.peek()) {
			p.next()
		}
		return nftStmt{op: "passive"}, nil
	}
	if p.peek() == "meta" || p.peek() == "mark" {
		if p.next() == "meta" {
			p.next()
		}
		s.markOp = p.next()
	} else {
		s.markOp = "="
	}
	switch s.markOp {
	case "or":
		s.markOp = "|"
	case "xor":
		s.markOp = "^"
	case "and":
		s.markOp = "&"
	}
	v, err := strconv.ParseUint(p.next(), 0, 32)
	if err != nil {
		return s, fmt.Errorf("meta mark set: %v", err)
	}
	s.markVal = v
	return s, nil
}

func (p *nftParser) dnat(kw string) (nftStmt, error) {
	s := nftStmt{op: "dnat"}
	if p.peek() == "ip" || p.peek() == "ip6" {
		if p.pos+1 < len(p.toks) && p.toks[p.pos+1] == "to" {
			p.next()
		}
	}
	if p.peek() != "to" {
		if kw == "redirect" {
			s.dnatTo = "127.0.0.1"
			return s, nil
		}
		return s, fmt.Errorf("dnat without to")
	}
	p.next()
	if selectorStarts[p.peek()] {
		lhs, err := p.concat()
		if err != nil {
			return s, err
		}
		s.lhs = lhs
		if p.next() != "map" {
			return s, fmt.Errorf("dnat to an expression without a map")
		}
		return s, p.rhsSet(&s)
	}
	s.dnatTo = p.next()
	if kw == "redirect" {
		s.dnatTo = "127.0.0.1" + s.dnatTo
	}
	for p.peek() == "fully-random" || p.peek() == "persistent" || p.peek() == "random" {
		p.next()
	}
	return s, nil
}
