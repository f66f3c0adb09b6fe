package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

type tri int

const (
	no tri = iota
	yes
	chance  // matches with a probability
	unknown // cannot be evaluated from the rules alone
)

// iptCond is one match of a rule. eval returns yes/no, or chance with the
// probability of matching, or unknown with a reason.
type iptCond interface {
	eval(ev *evalCtx, f *flow) (tri, float64, string)
}

// moduleCond is a -m module; its options arrive one by one.
type moduleCond interface {
	iptCond
	option(name string, args []string, neg bool) error
}

func (p *ruleParser) moduleOption(name string, args []string, neg bool) error {
	if p.cur == nil {
		// Without -m, iptables loads the protocol's own module for --dport.
		p.module = "tcp"
		p.cur = newModuleCond(p.module)
		p.rule.conds = append(p.rule.conds, p.cur)
	}
	if err := p.cur.option(name, args, neg); err != nil {
		return fmt.Errorf("-m %s %s: %v", p.module, name, err)
	}
	return nil
}

func newModuleCond(m string) moduleCond {
	switch m {
	case "tcp", "udp", "sctp":
		return &portCond{}
	case "multiport":
		return &portCond{multi: true}
	case "comment", "nfacct":
		// Passive: always match.
		return &commentCond{}
	case "addrtype":
		return &addrtypeCond{}
	case "statistic":
		return &statisticCond{}
	case "recent":
		return &recentCond{}
	case "mark":
		return &markCond{}
	case "conntrack", "state":
		return &ctCond{}
	case "set":
		return &setCond{}
	}
	return &unknownCond{module: m}
}

// ---- basic matches (-s -d -p -i -o -f)

type addrCond struct {
	dst    bool
	prefix netip.Prefix
	neg    bool
}

type protoCond struct {
	proto string
	neg   bool
}

type ifaceCond struct {
	out  bool
	name string
	neg  bool
}

type fragmentCond struct{ neg bool }

func basicCond(opt, v string, neg bool) (iptCond, error) {
	switch opt {
	case "-s", "--source", "-d", "--destination":
		pfx, err := parsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %v", opt, v, err)
		}
		return addrCond{dst: opt == "-d" || opt == "--destination", prefix: pfx, neg: neg}, nil
	case "-p", "--protocol":
		return protoCond{proto: protoNumber(v), neg: neg}, nil
	}
	return ifaceCond{out: opt == "-o" || opt == "--out-interface", name: v, neg: neg}, nil
}

// parsePrefix accepts "a.b.c.d", "a.b.c.d/n" and "a.b.c.d/255.255.0.0".
func parsePrefix(v string) (netip.Prefix, error) {
	addr, mask, ok := strings.Cut(v, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := a.BitLen()
	if ok {
		if n, err := strconv.Atoi(mask); err == nil {
			bits = n
		} else {
			m, err := netip.ParseAddr(mask)
			if err != nil {
				return netip.Prefix{}, fmt.Errorf("mask %q", mask)
			}
			bits = 0
			for _, b := range m.AsSlice() {
				for i := 7; i >= 0 && b&(1<<i) != 0; i-- {
					bits++
				}
			}
		}
	}
	return a.Prefix(bits)
}

func negate(m bool, neg bool) tri {
	if m != neg {
		return yes
	}
	return no
}

func (c addrCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	a := f.src
	if c.dst {
		a = f.dst
	}
	return negate(c.prefix.Contains(a), c.neg), 0, ""
}

func (c protoCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	return negate(c.proto == "all" || c.proto == "0" || c.proto == f.proto, c.neg), 0, ""
}

func (c ifaceCond) eval(_ *evalCtx, f *flow) (tri, float64, string) {
	if c.out {
		return unknown, 0, "the output interface is not known to trace"
	}
	if f.in == "" {
		// Locally generated packets have no input interface.
		return negate(false, c.neg), 0, ""
	}
	name := c.name
	m := f.in == name
	if strings.HasSuffix(name, "+") {
		m = strings.HasPrefix(f.in, strings.TrimSuffix(name, "+"))
	}
	return negate(m, c.neg), 0, ""
}

func (c fragmentCond) eval(*evalCtx, *flow) (tri, float64, string) {
	return negate(false, c.neg), 0, ""
}
