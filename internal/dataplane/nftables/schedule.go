package nftables

import (
	"fmt"
	"hash/fnv"
	"slices"

	"kproxy.dev/kproxy/internal/state"
)

// Schedulers this mode expresses in the kernel. Others fall back to random.
const (
	schedRandom = "random"
	schedRR     = "rr"
	schedWRR    = "wrr"
	schedSH     = "sh"
	schedMH     = "mh"
)

// schedule is the endpoint choice of one ServicePort.
type schedule struct {
	name    string
	mhPort  bool
	service string // for the hash seed
}

func newSchedule(o renderOptions, sp *state.ServicePort, fr *fragment) schedule {
	name := sp.Scheduler
	if name == "" {
		name = o.defaultScheduler
	}
	s := schedule{name: name, service: sp.Name.String(), mhPort: slices.Contains(sp.SchedulerFlags, "mh-port")}
	switch name {
	case schedRandom, schedRR, schedWRR, schedSH:
	case schedMH:
		// The Maglev table construction belongs to internal/lb; until it is
		// exported, mh hashes the same key without Maglev's minimal disruption.
		fr.warnings = append(fr.warnings, fmt.Sprintf(
			"service %s: scheduler mh uses plain source hashing in nftables mode (no Maglev table yet)", sp.Name))
	default:
		fr.warnings = append(fr.warnings, fmt.Sprintf(
			"service %s: scheduler %q cannot be expressed in nftables, using random", sp.Name, name))
		s.name = schedRandom
	}
	return s
}

// pick returns the rules that choose one of eps. Endpoints with weight 0 take no new
// connections (IPVS semantics).
func (s schedule) pick(p servicePort, chainName string, eps []state.Endpoint, fr *fragment) []rule {
	var live []state.Endpoint
	for _, e := range eps {
		if e.Weight != 0 {
			live = append(live, e)
		}
	}
	if len(live) == 0 {
		return []rule{{verdictDrop}}
	}
	if len(live) == 1 {
		return []rule{{gotoChain(p.names.endpoint(live[0].AddrPort()))}}
	}
	switch s.name {
	case schedRR:
		return s.indexed(p, chainName, live, "inc", fr)
	case schedWRR:
		return s.indexed(p, chainName, expandWeights(live), "inc", fr)
	case schedSH, schedMH:
		return s.indexed(p, chainName, live, "jhash", fr)
	}
	return randomCascade(p, live)
}

// randomCascade picks endpoint i of n with probability 1/(n-i): the same distribution
// as one random index, without an (anonymous) set per Service, which would make
// loading the table superlinear in the kernel.
func randomCascade(p servicePort, eps []state.Endpoint) []rule {
	var rules []rule
	for i, e := range eps {
		target := gotoChain(p.names.endpoint(e.AddrPort()))
		if i == len(eps)-1 {
			rules = append(rules, rule{target})
			break
		}
		rules = append(rules, rule{numgenEq{mod: uint32(len(eps) - i)}, target})
	}
	return rules
}

// indexed computes one index per new connection (a counter or a hash) and looks it up
// in a named verdict map of this chain; slots lists the endpoint of each index.
func (s schedule) indexed(p servicePort, chainName string, slots []state.Endpoint, kind string, fr *fragment) []rule {
	m := &set{name: p.names.selectMap(chainName), kind: kindIndexMap}
	fr.sets = append(fr.sets, m)
	for i, e := range slots {
		fr.elems = append(fr.elems, elem{set: m.name, index: uint32(i), verdict: "goto " + p.names.endpoint(e.AddrPort())})
	}
	sel := selector{fam: p.fam(), kind: kind, mod: uint32(len(slots)), set: m.name}
	if kind == "jhash" {
		sel.seed = seedOf(s.service)
		sel.withPort = s.mhPort
	}
	return []rule{{sel}}
}

func seedOf(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}

// expandWeights repeats each endpoint weight/gcd times, interleaved so that a counter
// walks the endpoints smoothly (weights 3:1 give a a b a, not a a a b).
func expandWeights(eps []state.Endpoint) []state.Endpoint {
	g := 0
	for _, e := range eps {
		g = gcd(g, e.Weight)
	}
	left := make([]int, len(eps))
	total := 0
	for i, e := range eps {
		left[i] = e.Weight / g
		total += left[i]
	}
	// Smooth weighted round robin (as nginx does): each step every endpoint gains
	// its weight, the richest is chosen and pays the total.
	cur := make([]int, len(eps))
	out := make([]state.Endpoint, 0, total)
	for range total {
		best := 0
		for i := range eps {
			cur[i] += left[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, eps[best])
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
