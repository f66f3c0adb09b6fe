package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
)

// ParseIpvsadm reads `ipvsadm -Ln` output into virtual services. Line numbers are
// kept in the Service field as "line N" for the steps (the text has no names).
func ParseIpvsadm(text string) ([]dataplane.VirtualService, error) {
	var out []dataplane.VirtualService
	for i, raw := range strings.Split(text, "\n") {
		f := strings.Fields(raw)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "TCP", "UDP", "SCTP":
			if len(f) < 3 {
				return nil, fmt.Errorf("line %d: virtual service without a scheduler: %q", i+1, raw)
			}
			vs := dataplane.VirtualService{Service: fmt.Sprintf("line %d", i+1), Protocol: f[0],
				Address: f[1], Scheduler: f[2], RealServers: []dataplane.RealServer{}}
			for j := 3; j < len(f); j++ {
				if f[j] == "persistent" && j+1 < len(f) {
					vs.PersistentSeconds, _ = strconv.Atoi(f[j+1])
					j++
				} else {
					vs.Flags = append(vs.Flags, f[j])
				}
			}
			out = append(out, vs)
		case "->":
			if len(f) < 3 || f[1] == "RemoteAddress:Port" {
				continue
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("line %d: real server before any virtual service", i+1)
			}
			rs := dataplane.RealServer{Address: f[1], Forward: f[2]}
			if len(f) > 3 {
				rs.Weight, _ = strconv.Atoi(f[3])
			}
			if len(f) > 5 {
				rs.ActiveConn, _ = strconv.ParseInt(f[4], 10, 64)
				rs.InActConn, _ = strconv.ParseInt(f[5], 10, 64)
			}
			vs := &out[len(out)-1]
			vs.RealServers = append(vs.RealServers, rs)
		}
	}
	if len(out) == 0 && !strings.Contains(text, "IP Virtual Server") {
		return nil, fmt.Errorf("no virtual service found: not ipvsadm -Ln output")
	}
	return out, nil
}

func findVS(vss []dataplane.VirtualService, want netip.AddrPort, proto string) *dataplane.VirtualService {
	for i := range vss {
		a, err := netip.ParseAddrPort(vss[i].Address)
		if err == nil && a.Addr().Unmap() == want.Addr() && a.Port() == want.Port() &&
			strings.EqualFold(vss[i].Protocol, proto) {
			return &vss[i]
		}
	}
	return nil
}

// hashSchedulers pick by a hash of the client, not at random.
var hashSchedulers = map[string]bool{"sh": true, "dh": true, "mh": true, "mh-port": true}

// TraceVirtualServices traces p through a table of virtual services: the IPVS
// table (mode "ipvs"), the userspace relays (mode "userspace", which connect to
// the endpoint from the node: masqueraded) or the ebpf mode's socket-LB maps (mode
// "ebpf": not NATed). Each real server is a candidate with its share of new
// connections by weight.
func TraceVirtualServices(mode string, vss []dataplane.VirtualService, p Packet, o Options) *Result {
	r := &Result{Mode: mode, Packet: packetInfo(p)}
	var n notes
	want := netip.AddrPortFrom(p.Dst, p.DPort)
	vs := findVS(vss, want, p.Proto)
	if vs == nil {
		r.Verdict = Verdict{Kind: "accept", Summary: "not a Service: accepted unchanged"}
		r.Candidates = []Candidate{}
		n.add(fmt.Sprintf("no %s virtual service for %s %s", mode, p.Proto, want))
		r.Notes = n.list
		return r
	}
	step := Step{Table: mode, Rule: vsText(vs), Action: "virtual service, scheduler " + vs.Scheduler}
	if l, ok := strings.CutPrefix(vs.Service, "line "); ok {
		step.Line, _ = strconv.Atoi(l)
	} else {
		step.Chain = vs.Service
	}
	r.Steps = []Step{step}
	r.Candidates = vsCandidates(vs)
	r.Verdict = summarize(r.Candidates)
	if len(r.Candidates) == 0 {
		r.Candidates = []Candidate{{Verdict: "reject", Probability: 1}}
		r.Verdict = Verdict{Kind: "reject", Summary: "rejected: the virtual service has no real server with weight > 0"}
	}
	if vs.PersistentSeconds > 0 {
		r.Affinity = []Affinity{{Store: mode + " persistence", Seconds: vs.PersistentSeconds}}
		n.add("a client that connected within the persistence timeout goes to the real server it used before")
	}
	switch {
	case hashSchedulers[vs.Scheduler]:
		n.add("scheduler " + vs.Scheduler + " picks by a hash: one client always gets the same real server; the probabilities are shares over many clients")
	case vs.Scheduler != "rr" && vs.Scheduler != "wrr" && vs.Scheduler != "random":
		n.add("scheduler " + vs.Scheduler + " also weighs the current connection counts; the probabilities are the weight shares")
	}
	switch mode {
	case "ipvs":
		n.add("IPVS rewrites the destination (Masq); source NAT is decided by kube-proxy's iptables rules and ipsets (KUBE-POSTROUTING, KUBE-LOOP-BACK), not traced without the iptables-save text")
	case "ebpf":
		n.add("socket LB connects the client's socket to the endpoint itself (no NAT): the endpoint sees the client's own address")
	default:
		r.Masquerade = true
		for i := range r.Candidates {
			r.Candidates[i].Masquerade = true
		}
		n.add("the userspace relay connects to the endpoint from the node: the endpoint sees a node address")
	}
	r.Notes = n.list
	return r
}

func vsText(vs *dataplane.VirtualService) string {
	s := fmt.Sprintf("%s  %s %s", vs.Protocol, vs.Address, vs.Scheduler)
	if len(vs.Flags) > 0 {
		s += " (" + strings.Join(vs.Flags, ",") + ")"
	}
	if vs.PersistentSeconds > 0 {
		s += fmt.Sprintf(" persistent %d", vs.PersistentSeconds)
	}
	return s
}

func vsCandidates(vs *dataplane.VirtualService) []Candidate {
	total := 0
	for _, rs := range vs.RealServers {
		if rs.Weight > 0 {
			total += rs.Weight
		}
	}
	out := []Candidate{}
	for _, rs := range vs.RealServers {
		if rs.Weight <= 0 {
			continue
		}
		out = append(out, Candidate{Verdict: "dnat", Endpoint: rs.Address, Weight: rs.Weight,
			Probability: round(float64(rs.Weight) / float64(total)),
			Steps: []Step{{Table: "ipvs", Rule: fmt.Sprintf("-> %s %s %d", rs.Address, rs.Forward, rs.Weight),
				Action: fmt.Sprintf("real server, weight %d of %d", rs.Weight, total)}}})
	}
	return out
}
