package conntrack

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// Flow is what the reconciler needs of one conntrack entry: the original
// destination and the reply source (the endpoint when the flow was DNATed).
type Flow struct {
	Protocol    uint8
	OrigDst     netip.Addr
	OrigDstPort uint16
	ReplySrc    netip.AddrPort
}

// servingIPs maps a Service address or NodePort to the IPs of its serving endpoints.
type servingIPs map[netip.Addr]struct{}

// Reconcile returns filters for the UDP flows that the event-driven cleanup missed:
// flows whose original destination is a UDP Service address (ClusterIP, external
// IP, load-balancer IP) and port, or a UDP NodePort, and whose reply source is not a
// serving endpoint of that Service port (kube-proxy 1.33's conntrack reconciler,
// which compares endpoint IPs only). It is pure.
//
// isNodeAddr narrows NodePort matches to flows addressed to the node; nil matches
// any destination, as kube-proxy does. Passing it keeps unrelated flows that merely
// use the same port number (a pod talking to a remote host's port 30053) intact.
func Reconcile(flows []Flow, snap *state.Snapshot, isNodeAddr func(netip.Addr) bool) []Filter {
	type vipKey struct {
		addr netip.Addr
		port uint16
	}
	vips := map[vipKey]servingIPs{}
	nodePorts := map[uint16]servingIPs{}
	for n, sp := range snap.All() {
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		ips := servingIPs{}
		for _, e := range snap.EndpointsOf(n) {
			if e.Serving {
				ips[e.IP.Unmap()] = struct{}{}
			}
		}
		for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
			for _, a := range list {
				vips[vipKey{a.Unmap(), uint16(sp.Port)}] = ips
			}
		}
		if sp.NodePort != 0 {
			nodePorts[uint16(sp.NodePort)] = ips
		}
	}
	var out []Filter
	seen := map[Filter]bool{}
	for _, f := range flows {
		if f.Protocol != protoUDP {
			continue
		}
		dst := f.OrigDst.Unmap()
		ips, ok := vips[vipKey{dst, f.OrigDstPort}]
		if !ok {
			if ips, ok = nodePorts[f.OrigDstPort]; !ok || (isNodeAddr != nil && !isNodeAddr(dst)) {
				continue
			}
		}
		if _, serving := ips[f.ReplySrc.Addr().Unmap()]; serving {
			continue
		}
		flt := Filter{Protocol: protoUDP, OrigDst: dst, OrigDstPort: f.OrigDstPort, Endpoint: f.ReplySrc}
		if !seen[flt] {
			seen[flt] = true
			out = append(out, flt)
		}
	}
	return out
}
