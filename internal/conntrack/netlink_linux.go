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
		if f.IPv4() {
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

// MatchConntrackFlow makes Filter a netlink.CustomConntrackFilter (see Matches).
func (f Filter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return f.Matches(flow.Forward.Protocol, addrPort(flow.Forward.DstIP, flow.Forward.DstPort),
		addrPort(flow.Reverse.SrcIP, flow.Reverse.SrcPort))
}

// addrPort converts a netlink address; an unparsable one becomes the invalid
// address, which no filter address equals.
func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a, port)
}
