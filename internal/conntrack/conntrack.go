// Package conntrack removes conntrack entries that would keep black-holing UDP (and
// SCTP) clients after a Service's endpoints change. A UDP "connection" never ends on
// its own while the client keeps sending, so without this a client whose endpoint went
// away keeps being NATed to it. Deletion goes through netlink, never the conntrack CLI.
//
// The proxier core (internal/dataplane) calls Clean after every successful sync of a
// mode that NATs in the kernel (iptables, nftables, ipvs); no mode calls it itself.
//
// Two more pieces follow kube-proxy: Tuner applies KubeProxyConfiguration.conntrack
// (table size, hash size, timeouts) at start, and Reconciler is the periodic safety
// net of kube-proxy 1.33+: it lists the table and deletes UDP entries whose
// Service address or NodePort no longer leads to a serving endpoint (Reconcile is
// its pure part), with kubeproxy_conntrack_reconciler_* metrics.
package conntrack

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// Filter selects the flows of one Service address that were NATed to one endpoint:
// original destination OrigDst:OrigDstPort (any destination when OrigDst is invalid,
// which is how NodePort flows are matched), reply source Endpoint (any reply source
// when Endpoint is invalid).
type Filter struct {
	Protocol    uint8
	OrigDst     netip.Addr
	OrigDstPort uint16
	Endpoint    netip.AddrPort
}

func (f Filter) String() string {
	dst := "*"
	if f.OrigDst.IsValid() {
		dst = f.OrigDst.String()
	}
	ep := "*"
	if f.Endpoint.IsValid() {
		ep = f.Endpoint.String()
	}
	return fmt.Sprintf("proto %d dst %s:%d reply-src %s", f.Protocol, dst, f.OrigDstPort, ep)
}

// Matches reports whether the filter selects a flow of protocol proto whose original
// destination is origDst and whose reply comes from replySrc (the endpoint it was
// NATed to). The reply source port is compared too, so a flow to the same pod IP on
// another port survives. The netlink deleter and the test fake both use it.
func (f Filter) Matches(proto uint8, origDst, replySrc netip.AddrPort) bool {
	if proto != f.Protocol || origDst.Port() != f.OrigDstPort {
		return false
	}
	if f.OrigDst.IsValid() && origDst.Addr().Unmap() != f.OrigDst.Unmap() {
		return false
	}
	if !f.Endpoint.IsValid() {
		return true
	}
	return replySrc.Addr().Unmap() == f.Endpoint.Addr().Unmap() && replySrc.Port() == f.Endpoint.Port()
}

// IPv4 reports which conntrack table (family) the filter applies to: an IPv4 one
// unless its endpoint or destination is IPv6. NodePort filters without an endpoint
// name no address and go to the IPv4 table.
func (f Filter) IPv4() bool {
	if f.Endpoint.IsValid() {
		return f.Endpoint.Addr().Unmap().Is4()
	}
	return !f.OrigDst.IsValid() || f.OrigDst.Unmap().Is4()
}

// Deleter deletes the flows matching any of the filters and returns how many it
// deleted. The netlink implementation is NewDeleter; tests use a fake.
type Deleter interface {
	Delete(filters []Filter) (uint, error)
}

// Protocol numbers, as in the IP header.
const (
	protoUDP  = 17
	protoSCTP = 132
)

// FiltersFor returns the filters that remove stale flows: for each endpoint no longer
// reachable, the flows to every address of its Service port (ClusterIPs, externalIPs,
// load-balancer IPs, and the NodePort on any address). TCP is skipped: TCP clients
// notice a dead endpoint by themselves.
func FiltersFor(stale []state.StaleFlow) []Filter {
	var out []Filter
	for _, s := range stale {
		proto := protocolNumber(s.Port.Protocol)
		if proto == 0 || !s.Endpoint.IP.IsValid() {
			continue
		}
		ep := s.Endpoint.AddrPort()
		vips := append(append(append([]netip.Addr{}, s.Port.ClusterIPs...), s.Port.ExternalIPs...), s.Port.LoadBalancerIPs...)
		for _, vip := range vips {
			if vip.Is4() != ep.Addr().Is4() {
				continue
			}
			out = append(out, Filter{Protocol: proto, OrigDst: vip, OrigDstPort: uint16(s.Port.Port), Endpoint: ep})
		}
		if s.Port.NodePort != 0 {
			out = append(out, Filter{Protocol: proto, OrigDstPort: uint16(s.Port.NodePort), Endpoint: ep})
		}
	}
	return out
}

// FiltersForNewlyServed returns the filters that remove every flow to the addresses
// of UDP ports that had no endpoint and now have one. While a port has no endpoint
// its packets are rejected without NAT, and the conntrack entry that records this
// would keep the client's flow un-NATed (black-holed) until it times out.
func FiltersForNewlyServed(ports []*state.ServicePort) []Filter {
	var out []Filter
	for _, sp := range ports {
		proto := protocolNumber(sp.Protocol)
		if proto == 0 {
			continue
		}
		vips := append(append(append([]netip.Addr{}, sp.ClusterIPs...), sp.ExternalIPs...), sp.LoadBalancerIPs...)
		for _, vip := range vips {
			out = append(out, Filter{Protocol: proto, OrigDst: vip, OrigDstPort: uint16(sp.Port)})
		}
		if sp.NodePort != 0 {
			out = append(out, Filter{Protocol: proto, OrigDstPort: uint16(sp.NodePort)})
		}
	}
	return out
}

func protocolNumber(p v1.Protocol) uint8 {
	switch p {
	case v1.ProtocolUDP:
		return protoUDP
	case v1.ProtocolSCTP:
		return protoSCTP
	}
	return 0
}

// CleanStale deletes the conntrack entries of stale endpoints. It returns the number
// of entries deleted; an error says which filters could not be applied.
func CleanStale(d Deleter, stale []state.StaleFlow) (uint, error) {
	return Clean(d, FiltersFor(stale))
}

// Clean applies filters (FiltersFor, FiltersForNewlyServed) in one pass.
func Clean(d Deleter, filters []Filter) (uint, error) {
	if len(filters) == 0 {
		return 0, nil
	}
	n, err := d.Delete(filters)
	if err != nil {
		return n, fmt.Errorf("conntrack: deleting stale UDP flows (%d filters, first: %s): %w", len(filters), filters[0], err)
	}
	return n, nil
}
