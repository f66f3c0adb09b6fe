package trace

import (
	"fmt"
	"sort"
	"strings"
)

// TraceNftables evaluates p through an `nft list ruleset` text: every table of
// family ip or inet, base chains in priority order on each hook.
func TraceNftables(text string, p Packet, o Options) (*Result, error) {
	rs, warn, err := parseNftRuleset(text)
	if err != nil {
		return nil, fmt.Errorf("nft ruleset text: %w", err)
	}
	return traceNftRuleset(rs, warn, p, o), nil
}

// NftRuleset is a ruleset read from the kernel over netlink (DecodeNetlink).
type NftRuleset struct {
	rs *nftRuleset
	// Undecoded counts rules with expressions the decoder does not know.
	Undecoded int
}

// TraceNftRuleset evaluates p through a ruleset read over netlink.
func TraceNftRuleset(r *NftRuleset, p Packet, o Options) *Result {
	return traceNftRuleset(r.rs, nil, p, o)
}

func traceNftRuleset(rs *nftRuleset, warn []string, p Packet, o Options) *Result {
	ev := &nftEval{evalCtx: evalCtx{opts: &o}, rs: rs, family: "ip"}
	if p.Dst.Is6() {
		ev.family = "ip6"
	}
	for _, w := range warn {
		ev.notes.add(w)
	}
	ev.noteIptablesNft()
	flows := ev.run(p)
	r := &Result{Mode: "nftables", Packet: packetInfo(p)}
	finish(r, flows)
	ev.resolveAffinity()
	r.Affinity = ev.aff
	r.Notes = ev.notes.list
	return r
}

type nftEval struct {
	evalCtx
	index  map[*nftSet]*elemIndex
	rs     *nftRuleset
	family string // the packet's table family: ip or ip6 (inet tables see both)
}

type nftOut struct {
	f       *flow
	miss    bool
	verdict string
	action  string
}

func (ev *nftEval) run(p Packet) []*flow {
	first := "output"
	if p.InInterface != "" {
		first = "prerouting"
	}
	flows := ev.hook([]*flow{newFlow(p)}, func(*flow) string { return first })
	route := func(f *flow) string {
		if first == "output" {
			return ""
		}
		if local, _ := ev.opts.isLocal(f.dst); local {
			return "input"
		}
		return "forward"
	}
	flows = ev.hook(flows, route)
	flows = ev.hook(flows, func(f *flow) string {
		if route(f) == "input" {
			return ""
		}
		return "postrouting"
	})
	// A packet the node sends to one of its own addresses comes back in through
	// the input hook.
	flows = ev.hook(flows, func(f *flow) string {
		if local, _ := ev.opts.isLocal(f.dst); first == "output" && local {
			return "input"
		}
		return ""
	})
	for _, f := range flows {
		if f.verdict == "" {
			f.verdict = "accept"
			if f.dnatted {
				f.verdict = "dnat"
			}
		}
	}
	return flows
}

// baseChains lists the base chains on hook that see the packet's family, by priority.
func (ev *nftEval) baseChains(hook string) []*nftChain {
	var out []*nftChain
	for _, t := range ev.rs.tables {
		if t.family != ev.family && t.family != "inet" {
			continue
		}
		for _, c := range t.chains {
			if c.hook == hook {
				out = append(out, c)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].priority != out[j].priority {
			return out[i].priority < out[j].priority
		}
		return out[i].table.name+out[i].name < out[j].table.name+out[j].name
	})
	return out
}

func (ev *nftEval) hook(flows []*flow, hookOf func(*flow) string) []*flow {
	for _, f := range flows {
		f.tv = ""
	}
	byHook := map[string][]*nftChain{}
	var out []*flow
	for _, f := range flows {
		h := hookOf(f)
		if f.verdict != "" || h == "" {
			out = append(out, f)
			continue
		}
		if _, ok := byHook[h]; !ok {
			byHook[h] = ev.baseChains(h)
		}
		cur := []*flow{f}
		for _, c := range byHook[h] {
			var next []*flow
			for _, g := range cur {
				if g.verdict != "" || ev.natDone(c, g) {
					next = append(next, g)
					continue
				}
				next = append(next, ev.base(c, g)...)
			}
			cur = next
		}
		out = append(out, cur...)
	}
	return out
}

// natDone: once a connection has its NAT binding for a direction, later nat
// chains of that hook are not consulted.
func (ev *nftEval) natDone(c *nftChain, f *flow) bool {
	if c.kind != "nat" {
		return false
	}
	if c.hook == "postrouting" {
		return f.masq
	}
	return f.dnatted
}

func (ev *nftEval) base(c *nftChain, f *flow) []*flow {
	res := ev.walk(c, f, 0)
	for _, g := range res {
		switch g.tv {
		case "":
			if c.policy == "drop" {
				g.step(Step{Table: c.table.family + " " + c.table.name, Chain: c.name, Rule: "policy drop", Action: "chain policy drop"})
				g.verdict = "drop"
			}
		case "drop", "reject":
			g.verdict = g.tv
		}
		g.tv = ""
	}
	return res
}

func (ev *nftEval) walk(c *nftChain, f *flow, depth int) []*flow {
	if depth > maxDepth {
		ev.notes.add(fmt.Sprintf("chain %s: jumps nest deeper than %d; stopped there", c.name, maxDepth))
		return []*flow{f}
	}
	return walkRules(c.rules, f, "return", func(r *nftRule, a *flow) []*flow {
		var res []*flow
		for _, o := range ev.rule(c, r, a) {
			if o.miss {
				res = append(res, o.f)
				continue
			}
			res = append(res, ev.verdict(c, r, o, depth)...)
		}
		return res
	})
}

func (ev *nftEval) stepOf(c *nftChain, r *nftRule, action string, chance float64) Step {
	return Step{Table: c.table.family + " " + c.table.name, Chain: c.name, Line: r.line,
		Handle: r.handle, Rule: r.text, Action: action, Chance: chance}
}

// verdict records the matched rule and follows its verdict.
func (ev *nftEval) verdict(c *nftChain, r *nftRule, o nftOut, depth int) []*flow {
	f := o.f
	action := o.action
	if action == "" {
		action = o.verdict
	}
	if action == "" {
		action = "matched"
	}
	f.step(ev.stepOf(c, r, action, round(f.chance)))
	f.chance = 0
	v, target, _ := strings.Cut(o.verdict, " ")
	switch v {
	case "":
		return []*flow{f}
	case "accept", "drop", "reject", "return":
		f.tv = v
		return []*flow{f}
	case "continue":
		return []*flow{f}
	}
	next := c.table.chains[target]
	if next == nil {
		ev.notes.add(fmt.Sprintf("line %d: chain %s is not in the ruleset; assumed to continue", r.line, target))
		return []*flow{f}
	}
	res := ev.walk(next, f, depth+1)
	if v == "goto" {
		for _, g := range res {
			if g.tv == "" {
				g.tv = "return"
			}
		}
	}
	return res
}

// rule evaluates r's statements for f: branches that stop matching (miss) and
// branches that reach the end or a verdict.
func (ev *nftEval) rule(c *nftChain, r *nftRule, f *flow) []nftOut {
	if r.problem != "" {
		ev.notes.add(fmt.Sprintf("line %d (%s): %s; the rule is assumed not to match", r.line, c.name, r.problem))
		return []nftOut{{f: f, miss: true}}
	}
	cur := []nftOut{{f: f}}
	var done []nftOut
	for _, s := range r.stmts {
		var next []nftOut
		for _, o := range cur {
			for _, res := range ev.stmt(c, r, s, o.f) {
				if res.action == "" {
					res.action = o.action
				}
				switch {
				case res.miss:
					if res.f.prob < f.prob && res.f.chance > 0 {
						res.f.skip(ev.stepOf(c, r, "", round(1-res.f.chance)), res.f.chance)
						res.f.chance = 0
					}
					done = append(done, res)
				case res.verdict != "":
					done = append(done, res)
				default:
					next = append(next, res)
				}
			}
		}
		cur = next
	}
	return append(done, cur...)
}
