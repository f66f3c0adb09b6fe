package trace

import (
	"fmt"
	"net/netip"
	"strings"
)

// IPSet is one ipset: its type's dimensions and members, as `ipset save` or
// `ipset list` prints them.
type IPSet struct {
	Name    string
	Type    string // hash:ip,port ...
	Members []string
}

// ParseIpset reads `ipset save` ("create"/"add" lines) or `ipset list` output.
func ParseIpset(text string) (map[string]*IPSet, error) {
	sets := map[string]*IPSet{}
	var cur *IPSet
	inMembers := false
	for i, raw := range strings.Split(text, "\n") {
		l := strings.TrimSpace(raw)
		f := strings.Fields(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
			inMembers = false
		case f[0] == "create" && len(f) >= 3:
			sets[f[1]] = &IPSet{Name: f[1], Type: f[2]}
		case f[0] == "add" && len(f) >= 3:
			s := sets[f[1]]
			if s == nil {
				return nil, fmt.Errorf("line %d: add to set %s before its create line", i+1, f[1])
			}
			s.Members = append(s.Members, f[2])
		case strings.HasPrefix(l, "Name:"):
			cur = &IPSet{Name: strings.TrimSpace(strings.TrimPrefix(l, "Name:"))}
			sets[cur.Name] = cur
			inMembers = false
		case strings.HasPrefix(l, "Type:") && cur != nil:
			cur.Type = strings.TrimSpace(strings.TrimPrefix(l, "Type:"))
		case l == "Members:":
			inMembers = true
		case inMembers && cur != nil:
			cur.Members = append(cur.Members, f[0])
		}
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("no set found: not ipset save or ipset list output")
	}
	return sets, nil
}

// setCond is -m set [!] --match-set NAME DIRS.
type setCond struct {
	name string
	dirs []string
	neg  bool
}

func (c *setCond) option(name string, args []string, neg bool) error {
	if name != "--match-set" {
		return nil // --return-nomatch, counters: not needed
	}
	if len(args) < 2 {
		return fmt.Errorf("want a set name and directions")
	}
	c.name, c.dirs, c.neg = args[0], strings.Split(args[1], ","), neg
	return nil
}

func (c *setCond) eval(ev *evalCtx, f *flow) (tri, float64, string) {
	if ev.opts.IPSets == nil {
		return unknown, 0, "ipset " + c.name + " is not known (give its ipset save output)"
	}
	s := ev.opts.IPSets[c.name]
	if s == nil {
		return unknown, 0, "ipset " + c.name + " is not in the ipset dump"
	}
	dims := strings.Split(strings.TrimPrefix(strings.TrimPrefix(s.Type, "hash:"), "bitmap:"), ",")
	if len(c.dirs) < len(dims) {
		return unknown, 0, "ipset " + c.name + ": fewer directions than dimensions"
	}
	for _, m := range s.Members {
		ok, why := memberMatches(strings.Split(m, ","), dims, c.dirs, f)
		if why != "" {
			return unknown, 0, why
		}
		if ok {
			return negate(true, c.neg), 0, ""
		}
	}
	return negate(false, c.neg), 0, ""
}

func memberMatches(parts, dims, dirs []string, f *flow) (bool, string) {
	if len(parts) != len(dims) {
		return false, ""
	}
	for i, d := range dims {
		addr, port := f.dst, f.dport
		if dirs[i] == "src" {
			addr = f.src
			if d == "port" {
				return false, "source ports are not known to trace"
			}
		}
		switch d {
		case "ip", "net":
			if !memberAddr(parts[i], addr) {
				return false, ""
			}
		case "port":
			if !memberPort(parts[i], f.proto, port) {
				return false, ""
			}
		default:
			return false, "ipset dimension " + d + " is not evaluated"
		}
	}
	return true, ""
}

func memberAddr(m string, a netip.Addr) bool {
	if strings.Contains(m, "/") {
		p, err := netip.ParsePrefix(m)
		return err == nil && p.Contains(a)
	}
	if lo, hi, ok := strings.Cut(m, "-"); ok {
		l, err1 := netip.ParseAddr(lo)
		h, err2 := netip.ParseAddr(hi)
		return err1 == nil && err2 == nil && l.Compare(a) <= 0 && a.Compare(h) <= 0
	}
	b, err := netip.ParseAddr(m)
	return err == nil && b == a
}

// memberPort matches "tcp:443" or a bare "30080" (bitmap:port has no protocol).
func memberPort(m, proto string, port uint16) bool {
	if p, n, ok := strings.Cut(m, ":"); ok {
		if protoNumber(p) != proto {
			return false
		}
		m = n
	}
	n, ok := portNumber(m)
	return ok && n == port
}
