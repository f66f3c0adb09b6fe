package iptables

import (
	"net/netip"
	"strconv"
	"strings"
)

// spec builds one rule in the exact form iptables-save prints it, so that rules
// read back from the kernel compare equal to rendered ones: addresses, then the
// protocol, then matches in the order added, then the target.
type spec struct {
	b strings.Builder
}

func newSpec() *spec {
	s := &spec{}
	s.b.Grow(160)
	return s
}

func (s *spec) add(parts ...string) *spec {
	for _, p := range parts {
		if s.b.Len() > 0 {
			s.b.WriteByte(' ')
		}
		s.b.WriteString(p)
	}
	return s
}

func (s *spec) src(p netip.Prefix, negate bool) *spec {
	if negate {
		s.add("!")
	}
	return s.add("-s", p.String())
}

func (s *spec) dst(a netip.Addr) *spec { return s.add("-d", hostPrefix(a)) }

// comment adds a comment match, quoted the way iptables-save quotes it.
func (s *spec) comment(c string) *spec { return s.add("-m", "comment", "--comment", saveString(c)) }

// dport matches a protocol and destination port ("-p tcp -m tcp --dport 80").
func (s *spec) proto(p string) *spec { return s.add("-p", p) }

func (s *spec) dport(p string, port int32) *spec {
	return s.add("-m", p, "--dport", strconv.Itoa(int(port)))
}

func (s *spec) jump(target string) string {
	s.add("-j", target)
	return s.b.String()
}

func (s *spec) String() string { return s.b.String() }

func hostPrefix(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// saveString quotes a string the way iptables-save (xtables_save_string) does: bare
// when it consists only of letters, digits, '_' and '-', otherwise in double quotes
// with '"', '\' and '\” escaped.
func saveString(v string) string {
	bare := v != ""
	for i := 0; i < len(v) && bare; i++ {
		c := v[i]
		bare = c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if bare {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
