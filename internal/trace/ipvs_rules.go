package trace

import (
	"fmt"
	"net/netip"

	"kproxy.dev/kproxy/internal/dataplane"
)

// TraceIPVS traces p in ipvs mode: the iptables rules kube-proxy and kproxy keep
// beside IPVS (marks for masquerade, filters, KUBE-POSTROUTING with its ipsets, in
// o.IPSets) and the IPVS table itself, which picks the real server. Without an
// iptables dump only the IPVS table is traced.
func TraceIPVS(vss []dataplane.VirtualService, iptablesDump string, p Packet, o Options) (*Result, error) {
	if iptablesDump == "" {
		return TraceVirtualServices("ipvs", vss, p, o), nil
	}
	d, warn, err := parseIptablesSave(iptablesDump)
	if err != nil {
		return nil, fmt.Errorf("iptables-save text: %w", err)
	}
	// Virtual service addresses are local: routed through kube-ipvs0 (or the node's own).
	for _, vs := range vss {
		if a, err := netip.ParseAddrPort(vs.Address); err == nil {
			o.LocalAddrs = append(o.LocalAddrs, a.Addr().Unmap())
		}
	}
	ev := &iptEval{evalCtx: evalCtx{opts: &o}, d: d, vss: vss}
	for _, w := range warn {
		ev.notes.add(w)
	}
	flows := ev.run(p)
	r := &Result{Mode: "ipvs", Packet: packetInfo(p)}
	finish(r, flows)
	r.Affinity = ev.aff
	r.Notes = ev.notes.list
	return r, nil
}

// ipvs applies the IPVS table to flows that reached a virtual service.
func (ev *iptEval) ipvs(flows []*flow) []*flow {
	var out []*flow
	for _, f := range flows {
		if f.verdict != "" || f.dnatted {
			out = append(out, f)
			continue
		}
		vs := findVS(ev.vss, netip.AddrPortFrom(f.dst, f.dport), f.proto)
		if vs == nil {
			out = append(out, f)
			continue
		}
		step := Step{Table: "ipvs", Rule: vsText(vs), Action: "virtual service, scheduler " + vs.Scheduler}
		if vs.PersistentSeconds > 0 {
			ev.affinity(Affinity{Store: "ipvs persistence", Seconds: vs.PersistentSeconds})
		}
		if hashSchedulers[vs.Scheduler] {
			ev.notes.add("scheduler " + vs.Scheduler + " picks by a hash: one client always gets the same real server; the probabilities are shares over many clients")
		}
		cands := vsCandidates(vs)
		if len(cands) == 0 {
			// The address is local and nothing listens on it: TCP gets a reset.
			f.step(step)
			f.verdict = "reject"
			out = append(out, f)
			continue
		}
		for _, c := range cands {
			g := f
			if len(cands) > 1 {
				if !ev.canFork() {
					break
				}
				g = f.fork(c.Probability)
			}
			g.step(step)
			s := c.Steps[0]
			s.Chance = c.Probability
			g.step(s)
			ap, err := netip.ParseAddrPort(c.Endpoint)
			if err != nil {
				ev.notes.add(fmt.Sprintf("real server %q: %v", c.Endpoint, err))
				continue
			}
			g.applyDNAT(ap)
			g.weight = c.Weight
			out = append(out, g)
		}
	}
	return out
}
