package iptables

import (
	"net/netip"

	"kproxy.dev/kproxy/internal/state"
)

// Family names for logs and the ip_family metric label, as kube-proxy spells them.
const (
	familyIPv4 = "IPv4"
	familyIPv6 = "IPv6"
)

// family is "IPv4" or "IPv6".
func (c RenderConfig) family() string {
	if c.IPv6 {
		return familyIPv6
	}
	return familyIPv4
}

// inFamily reports whether a belongs to the family this ruleset is rendered for.
// One iptables-restore input holds one family only: an address of the other one
// makes the whole restore fail ("invalid mask `128'").
func (c RenderConfig) inFamily(a netip.Addr) bool {
	a = a.Unmap()
	if c.IPv6 {
		return a.Is6()
	}
	return a.Is4()
}

// addrs returns the addresses of this family (IPv4-mapped ones unmapped).
func (c RenderConfig) addrs(in []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if c.inFamily(a) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// prefixes returns the CIDRs of this family, masked.
func (c RenderConfig) prefixes(in []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if c.inFamily(p.Addr()) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// endpoints returns the endpoints of this family; eps itself when all are.
func (c RenderConfig) endpoints(eps []state.Endpoint) []state.Endpoint {
	for i, e := range eps {
		if c.inFamily(e.IP) {
			continue
		}
		out := append([]state.Endpoint{}, eps[:i]...)
		for _, e := range eps[i+1:] {
			if c.inFamily(e.IP) {
				out = append(out, e)
			}
		}
		return out
	}
	return eps
}

// rejectTarget answers traffic to a Service without endpoints.
func (c RenderConfig) rejectTarget() string {
	if c.IPv6 {
		return "REJECT --reject-with icmp6-port-unreachable"
	}
	return "REJECT --reject-with icmp-port-unreachable"
}

// recentMask is the full-length source mask of the recent match (ClientIP
// affinity), as iptables-save prints it.
func (c RenderConfig) recentMask() string {
	if c.IPv6 {
		return "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	}
	return "255.255.255.255"
}

// loopback is the loopback range of the family.
func (c RenderConfig) loopback() netip.Prefix {
	if c.IPv6 {
		return netip.MustParsePrefix("::1/128")
	}
	return netip.MustParsePrefix("127.0.0.0/8")
}
