package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The -m modules trace evaluates.

// ---- -m tcp/udp/sctp/multiport

type portRange struct{ lo, hi uint16 }

type portCond struct {
	multi   bool
	dports  []portRange
	dneg    bool
	sport   bool
	flagsOK bool
}

func parsePorts(args []string, multi bool) ([]portRange, error) {
	var out []portRange
	for _, a := range args {
		for _, part := range strings.Split(a, ",") {
			lo, hi, isRange := strings.Cut(part, ":")
			l, ok := portNumber(lo)
			if !ok {
				return nil, fmt.Errorf("port %q", lo)
			}
			h := l
			if isRange {
				if h, ok = portNumber(hi); !ok {
					return nil, fmt.Errorf("port %q", hi)
				}
			}
			out = append(out, portRange{l, h})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no port")
	}
	return out, nil
}

func (c *portCond) option(name string, args []string, neg bool) error {
	switch name {
	case "--dport", "--destination-port", "--dports", "--destination-ports", "--ports":
		r, err := parsePorts(args, c.multi)
		if err != nil {
			return err
		}
		c.dports, c.dneg = r, neg
	case "--sport", "--source-port", "--sports", "--source-ports":
		c.sport = true
	case "--syn", "--tcp-flags", "--tcp-option":
		c.flagsOK = true
	}
	return nil
}

func (c *portCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	if c.sport {
		return unknown, 0, "source ports are not known to trace"
	}
	if c.dports == nil {
		return yes, 0, ""
	}
	m := false
	for _, r := range c.dports {
		m = m || (f.dport >= r.lo && f.dport <= r.hi)
	}
	return negate(m, c.dneg), 0, ""
}

// ---- -m comment

type commentCond struct{ text string }

func (c *commentCond) option(name string, args []string, _ bool) error {
	if len(args) > 0 {
		c.text = args[0]
	}
	return nil
}

func (c *commentCond) eval(*evalCtx, *flow) (tri, float64, string) { return yes, 0, "" }

// ---- -m addrtype

type addrtypeCond struct {
	dst, src       []string
	dstNeg, srcNeg bool
}

func (c *addrtypeCond) option(name string, args []string, neg bool) error {
	var types []string
	for _, a := range args {
		types = append(types, strings.Split(a, ",")...)
	}
	switch name {
	case "--dst-type":
		c.dst, c.dstNeg = types, neg
	case "--src-type":
		c.src, c.srcNeg = types, neg
	}
	return nil
}

func (c *addrtypeCond) eval(ev *evalCtx, f *flow) (tri, float64, string) {
	check := func(a netip.Addr, types []string, neg bool) (tri, string) {
		if types == nil {
			return yes, ""
		}
		local, note := ev.opts.isLocal(a)
		m := false
		for _, t := range types {
			switch t {
			case "LOCAL":
				m = m || local
			case "UNICAST":
				m = m || !a.IsMulticast()
			case "MULTICAST":
				m = m || a.IsMulticast()
			}
		}
		return negate(m, neg), note
	}
	r, note := check(f.dst, c.dst, c.dstNeg)
	ev.notes.add(note)
	if r == no {
		return no, 0, ""
	}
	r, note = check(f.src, c.src, c.srcNeg)
	ev.notes.add(note)
	return r, 0, ""
}

// ---- -m statistic

type statisticCond struct {
	mode string
	p    float64
	neg  bool
}

func (c *statisticCond) option(name string, args []string, neg bool) error {
	if len(args) == 0 {
		return fmt.Errorf("no value")
	}
	switch name {
	case "--mode":
		c.mode = args[0]
	case "--probability":
		p, err := strconv.ParseFloat(args[0], 64)
		if err != nil || p < 0 || p > 1 {
			return fmt.Errorf("probability %q", args[0])
		}
		c.p, c.neg = p, neg
	case "--every":
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			return fmt.Errorf("every %q", args[0])
		}
		// nth mode: over many connections, one in n matches.
		c.p, c.neg = 1/float64(n), neg
	}
	return nil
}

func (c *statisticCond) eval(*evalCtx, *flow) (tri, float64, string) {
	p := c.p
	if c.neg {
		p = 1 - p
	}
	switch p {
	case 0:
		return no, 0, ""
	case 1:
		return yes, 0, ""
	}
	return chance, p, ""
}

// ---- -m recent

type recentCond struct {
	check   bool // --rcheck / --update
	set     bool
	name    string
	seconds int
	neg     bool
}

func (c *recentCond) option(name string, args []string, neg bool) error {
	switch name {
	case "--rcheck", "--update":
		c.check, c.neg = true, neg
	case "--set":
		c.set = true
	case "--name":
		if len(args) > 0 {
			c.name = args[0]
		}
	case "--seconds":
		if len(args) > 0 {
			c.seconds, _ = strconv.Atoi(args[0])
		}
	}
	return nil
}

func (c *recentCond) listName() string {
	if c.name == "" {
		return "DEFAULT"
	}
	return c.name
}

func (c *recentCond) eval(ev *evalCtx, f *flow) (tri, float64, string) {
	if !c.check {
		return yes, 0, "" // --set always matches
	}
	known, present := ev.opts.inRecent(c.listName(), f.src)
	ev.affinity(Affinity{Store: "xt_recent " + c.listName(), Seconds: c.seconds, Pinned: present})
	if !known {
		ev.notes.add("session affinity (-m recent): the client is assumed not to be in any affinity list " +
			"(a new client); a client seen within the timeout goes to the endpoint it used before")
	}
	return negate(present, c.neg), 0, ""
}

// ---- -m mark

type markCond struct {
	value, mask uint32
	neg         bool
}

func parseMark(s string) (uint32, uint32, error) {
	v, m, hasMask := strings.Cut(s, "/")
	val, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("mark %q", s)
	}
	mask := uint64(0xffffffff)
	if hasMask {
		if mask, err = strconv.ParseUint(m, 0, 32); err != nil {
			return 0, 0, fmt.Errorf("mask %q", s)
		}
	}
	return uint32(val), uint32(mask), nil
}

func (c *markCond) option(name string, args []string, neg bool) error {
	if name != "--mark" || len(args) == 0 {
		return nil
	}
	v, m, err := parseMark(args[0])
	c.value, c.mask, c.neg = v, m, neg
	return err
}

func (c *markCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	return negate(f.mark&c.mask == c.value, c.neg), 0, ""
}

// ---- -m conntrack --ctstate / -m state --state: the traced packet opens a new
// connection.

type ctCond struct {
	states []string
	neg    bool
	other  string
}

func (c *ctCond) option(name string, args []string, neg bool) error {
	switch name {
	case "--ctstate", "--state":
		for _, a := range args {
			c.states = append(c.states, strings.Split(a, ",")...)
		}
		c.neg = neg
	default:
		c.other = name
	}
	return nil
}

func (c *ctCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	if c.other != "" {
		return unknown, 0, "conntrack " + c.other + " is not evaluated"
	}
	m := false
	for _, s := range c.states {
		// The traced packet opens a connection; DNAT is a state once nat has
		// rewritten the destination.
		m = m || s == "NEW" || (s == "DNAT" && f.dnatted)
	}
	return negate(m, c.neg), 0, ""
}

type unknownCond struct{ module string }

func (c *unknownCond) option(string, []string, bool) error { return nil }

func (c *unknownCond) eval(*evalCtx, *flow) (tri, float64, string) {
	return unknown, 0, "match -m " + c.module + " is not evaluated"
}
