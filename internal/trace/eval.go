package trace

// evalCtx is what every mode's evaluation shares: the node facts, the notes and the
// affinity found on the way.
type evalCtx struct {
	opts  *Options
	notes notes
	aff   []Affinity
	flows int // branches created, bounded by maxFlows
}

// maxFlows bounds forking: a Service has at most a few thousand endpoints, and a
// rule set that forks more than this is not a Service's.
const maxFlows = 20000

// maxDepth bounds jumps: deeper means a loop in a hand-edited dump.
const maxDepth = 64

func (ev *evalCtx) affinity(a Affinity) {
	for i, b := range ev.aff {
		if b.Store == a.Store {
			ev.aff[i].Pinned = b.Pinned || a.Pinned
			return
		}
	}
	ev.aff = append(ev.aff, a)
}

// canFork says whether another branch may be created.
func (ev *evalCtx) canFork() bool {
	if ev.flows >= maxFlows {
		ev.notes.add("too many random branches: the trace follows only the first ones")
		return false
	}
	ev.flows++
	return true
}
