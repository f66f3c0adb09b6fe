package trace

import (
	"fmt"
	"net/netip"
)

// flow is one branch of the evaluation: the packet as the rules have changed it so
// far, with the probability of being on this branch and the steps that led here.
type flow struct {
	prob  float64
	src   netip.Addr
	dst   netip.Addr
	dport uint16
	proto string
	in    string
	mark  uint32

	dnatted bool
	dnat    netip.AddrPort
	masq    bool
	weight  int
	// tv is the verdict of the table being walked: "", RETURN, ACCEPT, DROP, REJECT.
	tv string
	// chance is the probability of the random match that led to the pending step.
	chance float64
	// verdict is the final outcome: "dnat", "accept", "drop", "reject".
	verdict string
	steps   []Step
	// skipped collects consecutive random choices that passed this branch by, so
	// that the n-th endpoint of a Service does not carry n steps.
	skipped skipRun
}

// skipRun is a run of "not chosen" rules in one chain.
type skipRun struct {
	first Step
	last  int // line of the last one
	n     int
	prob  float64 // probability that none of them was chosen
}

func newFlow(p Packet) *flow {
	return &flow{prob: 1, src: p.Src, dst: p.Dst, dport: p.DPort, proto: p.Proto, in: p.InInterface}
}

// fork returns a copy of f on a branch taken with probability p (relative to f).
func (f *flow) fork(p float64) *flow {
	c := *f
	c.prob = f.prob * p
	c.steps = append([]Step(nil), f.steps...)
	return &c
}

func (f *flow) step(s Step) {
	f.flushSkips()
	f.steps = append(f.steps, s)
}

// skip records that the random match of rule s did not pick this branch (it
// had probability 1-miss of matching).
func (f *flow) skip(s Step, miss float64) {
	k := &f.skipped
	if k.n > 0 && (k.first.Table != s.Table || k.first.Chain != s.Chain) {
		f.flushSkips()
	}
	if k.n == 0 {
		k.first, k.prob = s, 1
	}
	k.n++
	k.last = s.Line
	k.prob *= miss
}

func (f *flow) flushSkips() {
	k := f.skipped
	if k.n == 0 {
		return
	}
	s := k.first
	s.Action = fmt.Sprintf("not chosen (probability %.6g)", round(k.prob))
	if k.n > 1 {
		s.Chance = 0
		s.Rule = fmt.Sprintf("%d rules choosing at random", k.n)
		if s.Line > 0 {
			s.Rule += fmt.Sprintf(", lines %d-%d", s.Line, k.last)
		}
		s.Action = fmt.Sprintf("none chosen (probability %.6g together)", round(k.prob))
	}
	f.skipped = skipRun{}
	f.steps = append(f.steps, s)
}

func (f *flow) applyDNAT(to netip.AddrPort) {
	f.dnatted = true
	f.dnat = to
	f.dst = to.Addr()
	f.dport = to.Port()
}

// notes collects notes once each, in order.
type notes struct {
	list []string
	seen map[string]bool
}

func (n *notes) add(s string) {
	if s == "" {
		return
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	if n.seen[s] || len(n.list) >= 50 {
		return
	}
	n.seen[s] = true
	n.list = append(n.list, s)
}

// walkRules passes f through a chain's rules in order, as both iptables and
// nftables chains are walked. apply gives, for one rule and one flow in play, the
// flows that come out of it, in order: a flow without a verdict (tv "") goes on to
// the next rule; one with ret, the chain's return verdict, goes back to the caller
// with tv cleared; one with any other verdict ends there. Flows that pass the last
// rule come back after those that ended.
func walkRules[R any](rules []R, f *flow, ret string, apply func(r R, f *flow) []*flow) []*flow {
	active := []*flow{f}
	var out []*flow
	for _, r := range rules {
		if len(active) == 0 {
			break
		}
		var next []*flow
		for _, a := range active {
			for _, g := range apply(r, a) {
				switch g.tv {
				case "":
					next = append(next, g)
				case ret:
					g.tv = ""
					out = append(out, g)
				default:
					out = append(out, g)
				}
			}
		}
		active = next
	}
	return append(out, active...)
}
