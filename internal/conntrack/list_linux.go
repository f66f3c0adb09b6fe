//go:build linux

package conntrack

import (
	"net/netip"

	"github.com/vishvananda/netlink"
)

// NewLister returns a Lister over netlink, for the network namespace of the calling
// thread.
func NewLister() Lister { return netlinkLister{} }

type netlinkLister struct{}

// List dumps the table and keeps the UDP entries (the only ones reconciled).
func (netlinkLister) List(f Family) ([]Flow, error) {
	fam := netlink.FAMILY_V4
	if f == IPv6 {
		fam = netlink.FAMILY_V6
	}
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, netlink.InetFamily(fam))
	if err != nil {
		return nil, err
	}
	out := make([]Flow, 0, len(flows))
	for _, fl := range flows {
		if fl.Forward.Protocol != protoUDP {
			continue
		}
		dst, ok1 := netip.AddrFromSlice(fl.Forward.DstIP)
		src, ok2 := netip.AddrFromSlice(fl.Reverse.SrcIP)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, Flow{Protocol: protoUDP, OrigDst: dst.Unmap(), OrigDstPort: fl.Forward.DstPort,
			ReplySrc: netip.AddrPortFrom(src.Unmap(), fl.Reverse.SrcPort)})
	}
	return out, nil
}
