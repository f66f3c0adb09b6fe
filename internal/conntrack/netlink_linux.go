//go:build linux

package conntrack

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// NewDeleter returns a Deleter that works on the conntrack table of the network
// namespace the process runs in.
func NewDeleter() Deleter { return netlinkDeleter{} }

type netlinkDeleter struct{}

func (netlinkDeleter) Delete(filters []Filter) (uint, error) {
	var v4, v6 []netlink.CustomConntrackFilter
	for _, f := range filters {
		if f.family4() {
			v4 = append(v4, f)
		} else {
			v6 = append(v6, f)
		}
	}
	var total uint
	var errs []error
	for _, fam := range []struct {
		family  netlink.InetFamily
		filters []netlink.CustomConntrackFilter
	}{{netlink.FAMILY_V4, v4}, {netlink.FAMILY_V6, v6}} {
		if len(fam.filters) == 0 {
			continue
		}
		n, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam.family, fam.filters...)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// MatchConntrackFlow makes Filter a netlink.CustomConntrackFilter. The reply source
// port is compared too, so a flow to the same pod IP on another port survives.
func (f Filter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != f.Protocol {
		return false
	}
	if flow.Forward.DstPort != f.OrigDstPort {
		return false
	}
	if f.OrigDst.IsValid() && !ipEqual(flow.Forward.DstIP, f.OrigDst) {
		return false
	}
	if !f.Endpoint.IsValid() {
		return true
	}
	return ipEqual(flow.Reverse.SrcIP, f.Endpoint.Addr()) && flow.Reverse.SrcPort == f.Endpoint.Port()
}

func (f Filter) family4() bool {
	if f.Endpoint.IsValid() {
		return f.Endpoint.Addr().Unmap().Is4()
	}
	return !f.OrigDst.IsValid() || f.OrigDst.Unmap().Is4()
}

func ipEqual(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a.Unmap()
}
