package trace

import (
	"fmt"
	"net/netip"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
)

// TraceIptables evaluates p through an iptables-save dump.
func TraceIptables(dump string, p Packet, o Options) (*Result, error) {
	d, warn, err := parseIptablesSave(dump)
	if err != nil {
		return nil, fmt.Errorf("iptables-save text: %w", err)
	}
	ev := &iptEval{evalCtx: evalCtx{opts: &o}, d: d}
	for _, w := range warn {
		ev.notes.add(w)
	}
	if d.tables["nat"] == nil {
		ev.notes.add("the dump has no nat table: no Service DNAT can happen")
	}
	flows := ev.run(p)
	r := &Result{Mode: "iptables", Packet: packetInfo(p)}
	finish(r, flows)
	ev.resolveAffinity()
	r.Affinity = ev.aff
	r.Notes = ev.notes.list
	return r, nil
}

func packetInfo(p Packet) PacketInfo {
	return PacketInfo{From: p.Src.String(), To: netip.AddrPortFrom(p.Dst, p.DPort).String(),
		Protocol: p.Proto, InInterface: p.InInterface, Path: p.path()}
}

type iptEval struct {
	evalCtx
	d *iptDump
	// vss is the IPVS table in ipvs mode: it rewrites the destination after the
	// filter hooks (IPVS sits on LOCAL_IN and LOCAL_OUT).
	vss []dataplane.VirtualService
}

// run sends the packet through the hooks in kernel order: mangle and nat on the way
// in, the routing decision, filter, then nat POSTROUTING for masquerading.
func (ev *iptEval) run(p Packet) []*flow {
	first := "OUTPUT"
	if p.InInterface != "" {
		first = "PREROUTING"
	}
	flows := []*flow{newFlow(p)}
	flows = ev.hook(flows, "raw", func(*flow) string { return first })
	flows = ev.hook(flows, "mangle", func(*flow) string { return first })
	flows = ev.hook(flows, "nat", func(*flow) string { return first })
	route := func(f *flow) string {
		if first == "OUTPUT" {
			return "OUTPUT"
		}
		if local, _ := ev.opts.isLocal(f.dst); local {
			return "INPUT"
		}
		return "FORWARD"
	}
	flows = ev.hook(flows, "mangle", route)
	flows = ev.hook(flows, "filter", route)
	if ev.vss != nil {
		flows = ev.ipvs(flows)
	}
	flows = ev.hook(flows, "nat", func(f *flow) string {
		if route(f) == "INPUT" {
			return "" // delivered locally: no POSTROUTING
		}
		return "POSTROUTING"
	})
	// A packet the node sends to one of its own addresses comes back in through
	// INPUT after leaving through OUTPUT.
	loopback := func(f *flow) string {
		if local, _ := ev.opts.isLocal(f.dst); first == "OUTPUT" && local {
			return "INPUT"
		}
		return ""
	}
	flows = ev.hook(flows, "mangle", loopback)
	flows = ev.hook(flows, "filter", loopback)
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

// hook runs the built-in chain chainOf(f) of table for every flow still going.
func (ev *iptEval) hook(flows []*flow, table string, chainOf func(*flow) string) []*flow {
	t := ev.d.tables[table]
	var out []*flow
	for _, f := range flows {
		chain := chainOf(f)
		if f.verdict != "" || t == nil || chain == "" || t.chains[chain] == nil {
			out = append(out, f)
			continue
		}
		for _, g := range ev.walk(table, chain, f, 0) {
			switch g.tv {
			case "":
				if pol := t.chains[chain].policy; pol == "DROP" {
					g.step(Step{Table: table, Chain: chain, Rule: ":" + chain + " DROP", Action: "chain policy DROP"})
					g.verdict = "drop"
				}
			case "DROP":
				g.verdict = "drop"
			case "REJECT":
				g.verdict = "reject"
			}
			g.tv = ""
			out = append(out, g)
		}
	}
	return out
}

// walk evaluates chain for f and returns the resulting flows, each with tv "" (went
// back to the caller) or a terminal verdict (ACCEPT, DROP, REJECT).
func (ev *iptEval) walk(table, chain string, f *flow, depth int) []*flow {
	ch := ev.d.tables[table].chains[chain]
	if depth > maxDepth {
		ev.notes.add(fmt.Sprintf("%s/%s: jumps nest deeper than %d (a loop?); stopped there", table, chain, maxDepth))
		return []*flow{f}
	}
	return walkRules(ch.rules, f, "RETURN", func(r *iptRule, a *flow) []*flow {
		hit, miss := ev.match(table, chain, r, a)
		var res []*flow
		if miss != nil {
			res = append(res, miss)
		}
		if hit == nil {
			return res
		}
		return append(res, ev.target(table, chain, r, hit, depth)...)
	})
}

// match splits f into the branch where r matches and the one where it does not
// (either may be nil).
func (ev *iptEval) match(table, chain string, r *iptRule, f *flow) (hit, miss *flow) {
	p := 1.0
	for _, c := range r.conds {
		m, cp, why := c.eval(&ev.evalCtx, f)
		switch m {
		case no:
			return nil, f
		case unknown:
			ev.notes.add(fmt.Sprintf("line %d (%s/%s): %s; the rule is assumed not to match", r.line, table, chain, why))
			return nil, f
		case chance:
			p *= cp
		}
	}
	if p == 1 {
		return f, nil
	}
	if !ev.canFork() {
		return f, nil
	}
	miss = f.fork(1 - p)
	miss.skip(Step{Table: table, Chain: chain, Line: r.line, Rule: r.text, Chance: round(p)}, 1-p)
	hit = f.fork(p)
	hit.chance = p
	return hit, miss
}

func (ev *iptEval) target(table, chain string, r *iptRule, f *flow, depth int) []*flow {
	s := Step{Table: table, Chain: chain, Line: r.line, Rule: r.text, Chance: round(f.chance)}
	f.chance = 0
	t := r.target
	switch t {
	case "":
		s.Action = "matched (no target)"
		f.step(s)
		return []*flow{f}
	case "ACCEPT", "DROP", "REJECT", "RETURN":
		s.Action = t
		f.step(s)
		f.tv = t
		return []*flow{f}
	case "DNAT", "REDIRECT":
		to, err := dnatTarget(r, f)
		if err != nil {
			ev.notes.add(fmt.Sprintf("line %d: %v; treated as ACCEPT", r.line, err))
		} else {
			f.applyDNAT(to)
		}
		s.Action = "DNAT to " + to.String() + recentSetNote(r)
		f.step(s)
		f.tv = "ACCEPT"
		return []*flow{f}
	case "MASQUERADE", "SNAT":
		s.Action = t + " (source NAT)"
		f.step(s)
		f.masq = true
		f.tv = "ACCEPT"
		return []*flow{f}
	case "MARK":
		f.mark = applyMarkTarget(f.mark, r.targetArgs)
		s.Action = fmt.Sprintf("MARK (mark now %#x)", f.mark)
		f.step(s)
		return []*flow{f}
	}
	if ev.d.tables[table].chains[t] == nil {
		s.Action = t + " (not evaluated; continues)"
		f.step(s)
		if !passiveTargets[t] {
			ev.notes.add(fmt.Sprintf("line %d: target %s is not evaluated; assumed to let the packet continue", r.line, t))
		}
		return []*flow{f}
	}
	verb := "jump "
	if r.isGoto {
		verb = "goto "
	}
	s.Action = verb + t
	f.step(s)
	res := ev.walk(table, t, f, depth+1)
	if r.isGoto {
		for _, g := range res {
			if g.tv == "" {
				g.tv = "RETURN"
			}
		}
	}
	return res
}

// passiveTargets never end the traversal and change nothing trace looks at.
var passiveTargets = map[string]bool{"LOG": true, "NFLOG": true, "CONNMARK": true, "TRACE": true,
	"CT": true, "NOTRACK": true, "TCPMSS": true, "CHECKSUM": true, "AUDIT": true}

func recentSetNote(r *iptRule) string {
	for _, c := range r.conds {
		if rc, ok := c.(*recentCond); ok && rc.set {
			return " (records the client in xt_recent " + rc.listName() + " for affinity)"
		}
	}
	return ""
}

func dnatTarget(r *iptRule, f *flow) (netip.AddrPort, error) {
	if r.target == "REDIRECT" {
		port, ok := portNumber(strings.SplitN(r.targetArgs["--to-ports"], "-", 2)[0])
		if !ok {
			port = f.dport
		}
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), nil
	}
	to := r.targetArgs["--to-destination"]
	if to == "" {
		return netip.AddrPort{}, fmt.Errorf("DNAT without --to-destination")
	}
	// ip[-ip][:port[-port]]: the first address and port of any range.
	if ap, err := netip.ParseAddrPort(firstOfRanges(to)); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.SplitN(to, "-", 2)[0])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("DNAT --to-destination %q: %v", to, err)
	}
	return netip.AddrPortFrom(a, f.dport), nil
}

func firstOfRanges(to string) string {
	host, port := to, ""
	if i := strings.LastIndexByte(to, ':'); i >= 0 && !strings.HasSuffix(to, "]") {
		host, port = to[:i], to[i+1:]
	}
	host = strings.SplitN(host, "-", 2)[0]
	port = strings.SplitN(port, "-", 2)[0]
	if port == "" {
		return host
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// applyMarkTarget implements -j MARK's --set-xmark, --set-mark, --or-mark,
// --and-mark and --xor-mark.
func applyMarkTarget(mark uint32, args map[string]string) uint32 {
	for opt, v := range args {
		val, mask, err := parseMark(v)
		if err != nil {
			continue
		}
		switch opt {
		case "--set-xmark":
			mark = (mark &^ mask) ^ val
		case "--set-mark":
			mark = (mark &^ mask) | val
		case "--or-mark":
			mark |= val
		case "--and-mark":
			mark &= val
		case "--xor-mark":
			mark ^= val
		}
	}
	return mark
}

// resolveAffinity names the endpoint behind each xt_recent list: kube-proxy names the
// list after the endpoint chain, whose DNAT says where it goes.
func (ev *iptEval) resolveAffinity() {
	nat := ev.d.tables["nat"]
	if nat == nil {
		return
	}
	for i, a := range ev.aff {
		name := strings.TrimPrefix(a.Store, "xt_recent ")
		ch := nat.chains[name]
		if ch == nil {
			continue
		}
		for _, r := range ch.rules {
			if r.target == "DNAT" {
				ev.aff[i].Endpoint = r.targetArgs["--to-destination"]
			}
		}
	}
}
