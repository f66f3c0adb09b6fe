package trace

import (
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

func (f *flow) step(s Step) { f.steps = append(f.steps, s) }

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
