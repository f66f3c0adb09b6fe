//go:build linux

package conntrack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// ListNAT returns the conntrack entries of the calling network namespace whose
// original destination is dst (protocol proto: 6, 17, 132) and that were sent
// somewhere else: the connections a Service address actually dispatched.
func ListNAT(dst netip.AddrPort, proto uint8) ([]NATFlow, error) {
	fam := netlink.InetFamily(netlink.FAMILY_V4)
	if dst.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, fam)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("listing the conntrack table: %w", err)
	}
	var out []NATFlow
	for _, f := range flows {
		if f.Forward.Protocol != proto || f.Forward.DstPort != dst.Port() || !sameAddr(f.Forward.DstIP, dst.Addr()) {
			continue
		}
		src, _ := netip.AddrFromSlice(f.Forward.SrcIP)
		ep, ok := netip.AddrFromSlice(f.Reverse.SrcIP)
		if !ok {
			continue
		}
		to := netip.AddrPortFrom(ep.Unmap(), f.Reverse.SrcPort)
		if to == dst {
			continue // not rewritten
		}
		out = append(out, NATFlow{Protocol: proto, Source: src.Unmap(), Original: dst, Endpoint: to})
	}
	return out, nil
}

func sameAddr(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a.Unmap()
}
