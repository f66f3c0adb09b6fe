//go:build linux

package localroute

import (
	"fmt"
	"net"
	"net/netip"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Proto marks kproxy's local routes (rtm_protocol; not in /etc/iproute2/rt_protos),
// so that a restart and `kproxy --cleanup` find them:
// `ip route show table local proto 107`.
const Proto = netlink.RouteProtocol(107)

// Route is the route that makes a local through the link index.
func Route(linkIndex int, a netip.Addr) *netlink.Route {
	a = a.Unmap()
	return &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
		Type:      unix.RTN_LOCAL,
		Table:     unix.RT_TABLE_LOCAL,
		Scope:     netlink.SCOPE_HOST,
		Protocol:  Proto,
	}
}

// List lists kproxy's local routes (protocol Proto in the local table), of every
// link when linkIndex is 0, else of that link only.
func List(h *netlink.Handle, linkIndex int) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Protocol: Proto, LinkIndex: linkIndex}
	mask := uint64(netlink.RT_FILTER_TABLE | netlink.RT_FILTER_PROTOCOL)
	if linkIndex != 0 {
		mask |= netlink.RT_FILTER_OIF
	}
	var routes []netlink.Route
	var err error
	if h != nil {
		routes, err = h.RouteListFiltered(netlink.FAMILY_ALL, filter, mask)
	} else {
		routes, err = netlink.RouteListFiltered(netlink.FAMILY_ALL, filter, mask)
	}
	if err != nil {
		return nil, fmt.Errorf("listing kproxy's local routes: %w", err)
	}
	return routes, nil
}

// Addrs returns the destinations of routes.
func Addrs(routes []netlink.Route) []netip.Addr {
	out := make([]netip.Addr, 0, len(routes))
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// NewRouteMessage is the body of an RTM_NEWROUTE message for Route(index, a), for
// writers that batch many messages per sendmsg: struct rtmsg {family, dst_len,
// src_len, tos, table, protocol, scope, type u8; flags u32}, then RTA_DST,
// RTA_OIF and RTA_TABLE. Send it with NLM_F_CREATE|NLM_F_APPEND (AppendFlags):
// that adds the route beside a kernel route for an interface address of the
// same destination (a takeover from addresses), and still fails with EEXIST
// when the route itself exists.
func NewRouteMessage(index int, a netip.Addr) ([]byte, error) {
	a = a.Unmap()
	family := byte(unix.AF_INET)
	if a.Is6() {
		family = unix.AF_INET6
	}
	hdr := []byte{family, byte(a.BitLen()), 0, 0, unix.RT_TABLE_LOCAL, byte(Proto), unix.RT_SCOPE_HOST, unix.RTN_LOCAL, 0, 0, 0, 0}
	ae := mdnetlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, a.AsSlice())
	ae.Uint32(unix.RTA_OIF, uint32(index))
	ae.Uint32(unix.RTA_TABLE, unix.RT_TABLE_LOCAL)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode local route %s: %w", a, err)
	}
	return append(hdr, attrs...), nil
}

// AppendFlags are the netlink flags NewRouteMessage is sent with.
const AppendFlags = unix.NLM_F_CREATE | unix.NLM_F_APPEND
