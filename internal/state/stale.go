package state

import v1 "k8s.io/api/core/v1"

// StaleFlow names conntrack state that must go after a sync: UDP (and SCTP) flows to
// a Service address whose endpoint is no longer reachable, which would otherwise keep
// black-holing the client.
type StaleFlow struct {
	Port     *ServicePort
	Endpoint Endpoint
}

// StaleUDPEndpoints lists, for changed UDP ServicePorts, the endpoints that were
// reachable in prev and are not in cur (including ports removed altogether).
func StaleUDPEndpoints(prev, cur *Snapshot, changes ChangeSet) []StaleFlow {
	if prev == nil {
		return nil
	}
	var out []StaleFlow
	for n := range changes.Ports {
		if n.Protocol != v1.ProtocolUDP {
			continue
		}
		sp := prev.Services[n]
		if sp == nil {
			continue
		}
		before := prev.Categorize(n).AllReachable
		after := map[string]bool{}
		if cur.Services[n] != nil {
			for _, e := range cur.Categorize(n).AllReachable {
				after[e.String()] = true
			}
		}
		for _, e := range before {
			if !after[e.String()] {
				out = append(out, StaleFlow{Port: sp, Endpoint: e})
			}
		}
	}
	return out
}
