//go:build linux

package ipvs

import "kproxy.dev/kproxy/internal/state"

// trafficPolicy is what a ServicePort's traffic policies make of its categorised
// endpoints in IPVS mode.
//
// A virtual server without real servers makes IPVS answer ICMP port unreachable,
// but kube-proxy drops traffic that a Local policy finds no local endpoint for
// (when the Service has endpoints elsewhere), and lets in-cluster clients (pods
// and the node) of an externalTrafficPolicy Local address short-circuit to the
// cluster-wide endpoints. So, as kube-proxy's IPVS mode does (kubernetes
// PR #97081), the external virtual servers of such a port hold the cluster-wide
// endpoints, and the filter rules (rules.go) drop new connections from outside
// the cluster to them (set KUBE-EXTERNAL-NO-LOCAL) — which kube-proxy's IPVS mode
// does not do: it forwards them unmasqueraded to remote endpoints, whose replies
// bypass the node. internalTrafficPolicy Local keeps an empty ClusterIP virtual
// server (kube-proxy's IPVS mode fills it with the cluster-wide endpoints,
// against the API's contract) and pods' new connections to it are dropped (set
// KUBE-CLUSTER-IP-NO-LOCAL), as in kube-proxy's iptables and nftables modes.
type trafficPolicy struct {
	internal, external []state.Endpoint
	// dropInternal: the ClusterIPs are dropped for every client.
	dropInternal bool
	// dropOutside: the external addresses are dropped for clients outside the
	// cluster.
	dropOutside bool
}

func policyFor(sp *state.ServicePort, cat state.Categorized) trafficPolicy {
	p := trafficPolicy{internal: cat.Cluster, external: cat.Cluster}
	noLocal := cat.HasAny && len(cat.Local) == 0
	if sp.InternalPolicyLocal {
		p.internal = cat.Local
		p.dropInternal = noLocal
	}
	if sp.ExternalPolicyLocal {
		if noLocal {
			p.dropOutside = true
		} else {
			p.external = cat.Local
		}
	}
	return p
}
