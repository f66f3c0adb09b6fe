package nftables

import (
	"fmt"
	"hash/fnv"
	"slices"

	"kproxy.dev/kproxy/internal/lb"
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
	// mhSize is the Maglev table size; 0 picks one by endpoint count.
	mhSize int
}

func newSchedule(o renderOptions, sp *state.ServicePort, fr *fragment) schedule {
	name := sp.Scheduler
	if name == "" {
		name = o.defaultScheduler
	}
	s := schedule{name: name, service: sp.Name.String(), mhPort: slices.Contains(sp.SchedulerFlags, "mh-port"),
		mhSize: o.mhTableSize}
	switch name {
	case schedRandom, schedRR, schedWRR, schedSH, schedMH:
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
	live := liveEndpoints(eps)
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
	case schedSH:
		return s.indexed(p, chainName, live, "jhash", fr)
	case schedMH:
		return s.maglev(p, chainName, live, fr)
	}
	return s.random(p, chainName, live, fr)
}

// maxCascade is the largest endpoint count picked by a cascade of rules; larger
// sets are picked through a select map. A cascade costs one rule per endpoint to
// evaluate (per new connection) and to rewrite (per endpoint change), which at
// 10,000 endpoints is a 10,000-rule chain; the map costs one lookup, and an
// endpoint moving changes one element.
const maxCascade = maxSharedPick

// random picks one of eps uniformly.
func (s schedule) random(p servicePort, chainName string, eps []state.Endpoint, fr *fragment) []rule {
	if len(eps) > maxCascade {
		return s.indexed(p, chainName, eps, "random", fr)
	}
	return randomCascade(p, eps)
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
		fr.elems = append(fr.elems, elemSpec{set: m.name, index: uint32(i), verdict: "goto " + p.names.endpoint(e.AddrPort())}.elem())
	}
	sel := selector{fam: p.fam(), kind: kind, mod: uint32(len(slots)), set: m.name}
	if kind == "jhash" {
		sel.seed = seedOf(s.service)
		sel.withPort = s.mhPort
	}
	return []rule{{sel}}
}

// maglev fills the select map with a Maglev table built by internal/lb (the mh
// scheduler's own construction): the client's hash picks a slot, the slot an
// endpoint. Slots are elements, so an endpoint change rewrites only the slots that
// moved, and clients of the other endpoints keep theirs.
func (s schedule) maglev(p servicePort, chainName string, live []state.Endpoint, fr *fragment) []rule {
	size := s.mhSize
	if size == 0 {
		size = mhTableSize(len(live))
	}
	bs := make([]lb.Backend, len(live))
	for i, e := range live {
		bs[i] = lb.Backend{Addr: e.AddrPort(), Weight: e.Weight}
	}
	table, err := lb.MaglevTable(bs, size)
	if err != nil || table == nil {
		fr.warnings = append(fr.warnings, fmt.Sprintf("service %s: no Maglev table (%v), using random", s.service, err))
		return s.random(p, chainName, live, fr)
	}
	slots := make([]state.Endpoint, len(table))
	for i, b := range table {
		slots[i] = live[b]
	}
	return s.indexed(p, chainName, slots, "jhash", fr)
}

// mhTableSizes are the Maglev table sizes (primes) this mode uses: the kernel
// IPVS default of 4093 slots, larger only when a Service has so many endpoints
// that each would own fewer than about ten slots (Maglev balances within a few
// percent only with M >> N). Every slot is a map element loaded into the kernel, so
// the default stays small; see README.md for the load cost.
var mhTableSizes = []int{4093, 16381, 65521}

func mhTableSize(endpoints int) int {
	for _, m := range mhTableSizes {
		if m >= 10*endpoints {
			return m
		}
	}
	return mhTableSizes[len(mhTableSizes)-1]
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
