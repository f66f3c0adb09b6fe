// Package nodeaddr decides which of this node's addresses serve NodePorts. Every
// dataplane needs the same answer, so it is computed here once: Select is pure and
// table-tested; LocalAddresses reads the interfaces it may be given.
//
// The node's addresses are the Node object's (InternalIP and ExternalIP) when the
// source has one, else the addresses of the local interfaces. The config's
// nodePortAddresses narrows them: each entry is a CIDR or one of the kube-proxy
// keywords "primary" (the node's primary IPv4 and IPv6 address), "localhost"
// (127.0.0.0/8 and ::1/128) and "all".
package nodeaddr

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The keywords nodePortAddresses accepts besides CIDRs.
const (
	KeywordPrimary   = "primary"
	KeywordLocalhost = "localhost"
	KeywordAll       = "all"
)

// Options are the inputs of Select.
type Options struct {
	// NodeAddresses are the Node object's addresses (state.NodeInfo.Addresses), in
	// the object's order; empty when the source has no Node object.
	NodeAddresses []netip.Addr
	// LocalAddresses are the addresses of the local interfaces (see LocalAddresses).
	LocalAddresses []netip.Addr
	// NodePortAddresses is the config's nodePortAddresses.
	NodePortAddresses []string
	// Default replaces an empty NodePortAddresses; nil means "all" (iptables, ipvs and
	// userspace); nftables passes []string{"primary"} as upstream does.
	Default []string
}

// Filter is a parsed nodePortAddresses list.
type Filter struct {
	All       bool
	Primary   bool
	Localhost bool
	CIDRs     []netip.Prefix
}

// Parse validates a nodePortAddresses list. Errors name the offending entry.
func Parse(list []string) (Filter, error) {
	var f Filter
	for i, s := range list {
		s = strings.TrimSpace(s)
		switch s {
		case KeywordAll:
			f.All = true
		case KeywordPrimary:
			f.Primary = true
		case KeywordLocalhost:
			f.Localhost = true
		default:
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return Filter{}, fmt.Errorf("nodePortAddresses[%d]: %q is neither a CIDR nor one of %q, %q, %q",
					i, s, KeywordPrimary, KeywordLocalhost, KeywordAll)
			}
			f.CIDRs = append(f.CIDRs, p.Masked())
		}
	}
	return f, nil
}

// Select returns the node addresses NodePorts are served on, sorted and without
// duplicates. IPv6 link-local addresses are never selected: a socket cannot use them
// without a zone. Loopback addresses are selected only when the list names them
// (localhost, or a CIDR containing them) or when the node's addresses come from the
// interfaces and the list selects all of them.
func Select(o Options) ([]netip.Addr, error) {
	list := o.NodePortAddresses
	if len(list) == 0 {
		list = o.Default
	}
	if len(list) == 0 {
		list = []string{KeywordAll}
	}
	f, err := Parse(list)
	if err != nil {
		return nil, err
	}
	node := o.NodeAddresses
	if len(node) == 0 {
		node = o.LocalAddresses
	}
	var out []netip.Addr
	if f.Primary {
		out = append(out, Primary(o.NodeAddresses, o.LocalAddresses)...)
	}
	for _, a := range node {
		if f.All || f.matches(a) {
			out = append(out, a)
		}
	}
	for _, a := range o.LocalAddresses {
		if a.Unmap().IsLoopback() && (f.Localhost || f.matches(a)) {
			out = append(out, a)
		}
	}
	return normalize(out), nil
}

func (f Filter) matches(a netip.Addr) bool {
	for _, p := range f.CIDRs {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Primary returns the node's primary addresses: the Node object's first IPv4 and
// first IPv6 address. Without a Node object (the file source) nothing says which
// address is primary, so every global address of the local interfaces is
// returned: serving NodePorts on too many addresses beats refusing them on the one
// clients use. kube-proxy always has a Node object, so it never faces this.
func Primary(node, local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	if len(node) == 0 {
		for _, a := range local {
			if a = a.Unmap(); usable(a) && !a.IsLoopback() {
				out = append(out, a)
			}
		}
		return out
	}
	for _, want4 := range []bool{true, false} {
		for _, a := range node {
			a = a.Unmap()
			if a.Is4() == want4 && usable(a) && !a.IsLoopback() {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsLinkLocalUnicast() && !a.IsMulticast()
}

func normalize(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if a = a.Unmap(); usable(a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}
