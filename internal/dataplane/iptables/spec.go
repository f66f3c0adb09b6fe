package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"strconv"
)

// spec builds one rule in the exact form iptables-save prints it, so that rules
// read back from the kernel compare equal to rendered ones: addresses, then the
// protocol, then matches in the order added, then the target.
type spec struct {
	a     *arena
	start int
}

// newSpec starts a rule in its own small arena (for the few rules outside the
// per-Service hot path).
func newSpec() *spec { return (&arena{}).spec() }

// spec starts a rule. The arena reuses one builder: rules are built one at a time
// (each is finished before the next starts), and this saves an allocation per rule.
func (a *arena) spec() *spec {
	a.cur = spec{a: a, start: a.begin()}
	return &a.cur
}

func (s *spec) sep() {
	if len(s.a.chunk) > s.start {
		s.a.chunk = append(s.a.chunk, ' ')
	}
}

func (s *spec) add(parts ...string) *spec {
	for _, p := range parts {
		s.a.reserve(&s.start, len(p)+1)
		s.sep()
		s.a.chunk = append(s.a.chunk, p...)
	}
	return s
}

// raw appends parts without separators.
func (s *spec) raw(parts ...string) *spec {
	for _, p := range parts {
		s.a.reserve(&s.start, len(p))
		s.a.chunk = append(s.a.chunk, p...)
	}
	return s
}

func (s *spec) src(p netip.Prefix, negate bool) *spec {
	if negate {
		s.add("!")
	}
	s.add("-s")
	s.a.reserve(&s.start, 44)
	s.sep()
	s.a.chunk = p.AppendTo(s.a.chunk)
	return s
}

func (s *spec) addrFlag(flag string, a netip.Addr) *spec {
	s.add(flag)
	s.a.reserve(&s.start, 48)
	s.sep()
	s.a.chunk = a.AppendTo(s.a.chunk)
	s.a.chunk = append(s.a.chunk, '/')
	s.a.chunk = strconv.AppendInt(s.a.chunk, int64(a.BitLen()), 10)
	return s
}

func (s *spec) dst(a netip.Addr) *spec { return s.addrFlag("-d", a) }

// comment adds a comment match made of parts, quoted the way iptables-save quotes it.
func (s *spec) comment(parts ...string) *spec {
	s.add("-m", "comment", "--comment")
	n := 3
	for _, p := range parts {
		n += 2 * len(p)
	}
	s.a.reserve(&s.start, n)
	s.sep()
	s.a.chunk = appendSaveString(s.a.chunk, parts...)
	return s
}

func (s *spec) proto(p string) *spec { return s.add("-p", p) }

// dport matches a destination port with the protocol's match module.
func (s *spec) dport(p string, port int32) *spec {
	s.add("-m", p, "--dport")
	s.a.reserve(&s.start, 8)
	s.sep()
	s.a.chunk = strconv.AppendInt(s.a.chunk, int64(port), 10)
	return s
}

// jump ends the rule and returns it.
func (s *spec) jump(target ...string) string {
	s.add("-j")
	s.add(target...)
	return s.a.finish(s.start)
}

// str returns what was added, for names and other strings built in the arena.
func (s *spec) str() string { return s.a.finish(s.start) }

func bareByte(c byte) bool {
	return c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// appendSaveString appends the concatenation of parts quoted the way iptables-save
// (xtables_save_string) does: bare when it consists only of letters, digits, '_'
// and '-', otherwise in double quotes with '"', '\' and '\” escaped.
func appendSaveString(b []byte, parts ...string) []byte {
	bare, empty := true, true
	for _, p := range parts {
		empty = empty && p == ""
		for i := 0; i < len(p) && bare; i++ {
			bare = bareByte(p[i])
		}
	}
	if bare && !empty {
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	b = append(b, '"')
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if c := p[i]; c == '"' || c == '\\' || c == '\'' {
				b = append(b, '\\')
			}
			b = append(b, p[i])
		}
	}
	return append(b, '"')
}

// appendHashName appends prefix + the first 16 characters of
// base32(sha256(parts...)), as kube-proxy names its chains: at most 25 characters,
// within iptables' 28-character limit.
func appendHashName(b []byte, prefix string, parts ...string) []byte {
	var in [512]byte
	buf := in[:0]
	for _, p := range parts {
		buf = append(buf, p...)
	}
	sum := sha256.Sum256(buf)
	var enc [56]byte
	base32.StdEncoding.Encode(enc[:], sum[:])
	b = append(b, prefix...)
	return append(b, enc[:16]...)
}
