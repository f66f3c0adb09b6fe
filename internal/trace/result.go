package trace

import (
	"fmt"
	"sort"
)

// Result is one traced packet. Field names in JSON are stable (docs/trace.md).
type Result struct {
	Mode   string     `json:"mode"`
	Source string     `json:"source"`
	Packet PacketInfo `json:"packet"`
	// Steps is the path shared by every candidate, in order.
	Steps []Step `json:"steps"`
	// Candidates are the possible outcomes, most likely first.
	Candidates []Candidate `json:"candidates"`
	// StepsAfter are steps every candidate takes after its own ones (filter
	// checks, masquerading), in order.
	StepsAfter []Step     `json:"stepsAfter,omitempty"`
	Affinity   []Affinity `json:"affinity,omitempty"`
	// Masquerade is true when the packet is source-NATed on every candidate path
	// (MasqueradeSome when only on some: hairpin traffic).
	Masquerade     bool      `json:"masquerade"`
	MasqueradeSome bool      `json:"masqueradeSome,omitempty"`
	Verdict        Verdict   `json:"verdict"`
	Notes          []string  `json:"notes,omitempty"`
	Live           *LiveInfo `json:"live,omitempty"`
}

// PacketInfo describes the traced packet.
type PacketInfo struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Protocol    string `json:"protocol"`
	InInterface string `json:"inInterface,omitempty"`
	// Path is "output" (locally generated) or "prerouting" (arrived on InInterface).
	Path string `json:"path"`
}

// Step is one rule, map element or table entry that matched.
type Step struct {
	Table string `json:"table"`
	Chain string `json:"chain,omitempty"`
	// Line is the 1-based line of the rule in the dump (0 when not from a dump).
	Line int `json:"line,omitempty"`
	// Handle is the nftables rule handle, when the listing showed handles.
	Handle uint64 `json:"handle,omitempty"`
	Rule   string `json:"rule"`
	// Action says what the step did: "jump KUBE-SVC-…", "DNAT 10.244.1.2:8080", ...
	Action string `json:"action"`
	// Chance is the probability this step's own random or hash match had of
	// matching (an iptables --probability, 1/N of numgen), when there was one.
	Chance float64 `json:"chance,omitempty"`
}

// Candidate is one outcome of the trace with the probability the packet gets it.
type Candidate struct {
	// Verdict is "dnat", "accept", "drop" or "reject".
	Verdict string `json:"verdict"`
	// Endpoint is the DNAT destination ("ip:port"): for "dnat", and for "drop" or
	// "reject" when a later rule dropped the packet after DNAT.
	Endpoint string `json:"endpoint,omitempty"`
	// Probability is the effective probability of this outcome for a new client.
	Probability float64 `json:"probability"`
	// Weight is the scheduler weight (ipvs, userspace) when there is one.
	Weight     int    `json:"weight,omitempty"`
	Masquerade bool   `json:"masquerade"`
	Steps      []Step `json:"steps,omitempty"`
}

// Affinity is ClientIP session affinity found on the path.
type Affinity struct {
	// Store is the xt_recent list, nftables set or IPVS persistence that holds it.
	Store    string `json:"store"`
	Endpoint string `json:"endpoint,omitempty"`
	Seconds  int    `json:"seconds,omitempty"`
	// Pinned is true when the client is in the store (read from the kernel): its
	// connections go to Endpoint whatever the random choice says.
	Pinned bool `json:"pinned"`
}

// Verdict sums the candidates up.
type Verdict struct {
	// Kind is "dnat", "accept", "drop", "reject" or "mixed".
	Kind string `json:"kind"`
	// Endpoint is set when exactly one DNAT destination is possible.
	Endpoint string `json:"endpoint,omitempty"`
	Summary  string `json:"summary"`
}

// LiveInfo is where recent connections to the traced destination actually went.
type LiveInfo struct {
	Total     int          `json:"total"`
	Endpoints []LiveTarget `json:"endpoints"`
}

// LiveTarget counts conntrack entries for one endpoint.
type LiveTarget struct {
	Endpoint string `json:"endpoint"`
	Count    int    `json:"count"`
}

// finish turns the terminal flows of an evaluation into a Result.
func finish(r *Result, flows []*flow) {
	type key struct{ verdict, ep string }
	byKey := map[key]*Candidate{}
	var order []key
	var paths [][]Step
	for _, f := range flows {
		f.flushSkips()
		k := key{f.verdict, ""}
		if f.dnatted {
			// Kept for drop and reject too: "DNATed to X, then dropped" is the
			// answer when a firewall disagrees with the Service.
			k.ep = f.dnat.String()
		}
		c, ok := byKey[k]
		if !ok {
			c = &Candidate{Verdict: k.verdict, Endpoint: k.ep, Masquerade: f.masq, Weight: f.weight}
			byKey[k] = c
			order = append(order, k)
			paths = append(paths, f.steps)
		}
		c.Probability += f.prob
		c.Masquerade = c.Masquerade && f.masq
	}
	prefix := commonPrefix(paths)
	r.Steps = append(r.Steps, paths[0][:prefix]...)
	suffix := 0
	if len(paths) > 1 {
		suffix = commonSuffix(paths, prefix)
		r.StepsAfter = paths[0][len(paths[0])-suffix:]
	}
	for i, k := range order {
		c := byKey[k]
		c.Steps = paths[i][prefix : len(paths[i])-suffix]
		c.Probability = round(c.Probability)
		r.Candidates = append(r.Candidates, *c)
	}
	sort.SliceStable(r.Candidates, func(i, j int) bool {
		return r.Candidates[i].Probability > r.Candidates[j].Probability
	})
	all, some := true, false
	for _, c := range r.Candidates {
		all = all && c.Masquerade
		some = some || c.Masquerade
	}
	r.Masquerade, r.MasqueradeSome = all, some && !all
	r.Verdict = summarize(r.Candidates)
}

func round(p float64) float64 {
	return float64(int64(p*1e6+0.5)) / 1e6
}

func commonPrefix(paths [][]Step) int {
	if len(paths) == 0 {
		return 0
	}
	n := len(paths[0])
	for _, p := range paths[1:] {
		if len(p) < n {
			n = len(p)
		}
		for i := 0; i < n; i++ {
			if p[i] != paths[0][i] {
				n = i
				break
			}
		}
	}
	return n
}

// commonSuffix is how many final steps every path shares, not counting the first
// prefix steps.
func commonSuffix(paths [][]Step, prefix int) int {
	n := len(paths[0]) - prefix
	for _, p := range paths[1:] {
		if len(p)-prefix < n {
			n = len(p) - prefix
		}
		for i := 1; i <= n; i++ {
			if p[len(p)-i] != paths[0][len(paths[0])-i] {
				n = i - 1
				break
			}
		}
	}
	return n
}

func summarize(cs []Candidate) Verdict {
	if len(cs) == 0 {
		return Verdict{Kind: "accept", Summary: "not a Service: accepted unchanged"}
	}
	kind := cs[0].Verdict
	for _, c := range cs[1:] {
		if c.Verdict != kind {
			return Verdict{Kind: "mixed", Summary: fmt.Sprintf("%d possible outcomes (see candidates)", len(cs))}
		}
	}
	switch kind {
	case "dnat":
		if len(cs) == 1 {
			return Verdict{Kind: kind, Endpoint: cs[0].Endpoint, Summary: "DNAT to " + cs[0].Endpoint}
		}
		return Verdict{Kind: kind, Summary: fmt.Sprintf("DNAT to one of %d endpoints", len(cs))}
	case "accept":
		return Verdict{Kind: kind, Summary: "not a Service: accepted unchanged"}
	case "drop":
		return Verdict{Kind: kind, Summary: "dropped"}
	case "reject":
		return Verdict{Kind: kind, Summary: "rejected (the Service has no endpoints)"}
	}
	return Verdict{Kind: kind, Summary: kind}
}
