//go:build linux

package ipvs

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"

	"github.com/mdlayher/netlink"
	mobyipvs "github.com/moby/ipvs"
)

// The IPVS generic netlink messages kproxy batches, encoded from the attribute
// layout of include/uapi/linux/ip_vs.h (the same layout github.com/moby/ipvs
// sends one request at a time).

// IPVS generic netlink commands and version.
const (
	ipvsGenlVersion   = 1
	ipvsCmdNewService = 1
	ipvsCmdNewDest    = 5
)

// Command attributes (IPVS_CMD_ATTR_*).
const (
	ipvsCmdAttrService = 1
	ipvsCmdAttrDest    = 2
)

// Service attributes (IPVS_SVC_ATTR_*).
const (
	ipvsSvcAttrAF        = 1 // u16
	ipvsSvcAttrProtocol  = 2 // u16
	ipvsSvcAttrAddr      = 3 // 4 or 16 bytes
	ipvsSvcAttrPort      = 4 // be16
	ipvsSvcAttrSchedName = 6 // NUL-terminated string
	ipvsSvcAttrFlags     = 7 // struct ip_vs_flags {u32 flags; u32 mask}
	ipvsSvcAttrTimeout   = 8 // u32 seconds
	ipvsSvcAttrNetmask   = 9 // u32 (prefix length for IPv6)
)

// Real server attributes (IPVS_DEST_ATTR_*).
const (
	ipvsDestAttrAddr      = 1  // 4 or 16 bytes
	ipvsDestAttrPort      = 2  // be16
	ipvsDestAttrFwdMethod = 3  // u32
	ipvsDestAttrWeight    = 4  // u32
	ipvsDestAttrUThresh   = 5  // u32
	ipvsDestAttrLThresh   = 6  // u32
	ipvsDestAttrAF        = 11 // u16
)

// Generic netlink controller (include/uapi/linux/genetlink.h).
const (
	genlIDCtrl         = 0x10
	ctrlCmdGetFamily   = 3
	ctrlAttrFamilyID   = 1
	ctrlAttrFamilyName = 2
	genlHdrLen         = 4
	ipvsGenlFamilyName = "IPVS"
)

// genlRequest is a generic netlink message: genlmsghdr {cmd, version, reserved}
// followed by attrs.
func genlRequest(family uint16, cmd, version uint8, attrs []byte) nlRequest {
	data := make([]byte, genlHdrLen, genlHdrLen+len(attrs))
	data[0], data[1] = cmd, version
	return nlRequest{Type: family, Data: append(data, attrs...)}
}

// newServiceRequest is IPVS_CMD_NEW_SERVICE for s (address, port, protocol,
// scheduler, flags, persistence timeout, netmask; fwmark services are not used).
func newServiceRequest(family uint16, s *mobyipvs.Service) (nlRequest, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrService, func(nae *netlink.AttributeEncoder) error {
		encodeServiceKey(nae, s)
		nae.String(ipvsSvcAttrSchedName, s.SchedName)
		nae.Do(ipvsSvcAttrFlags, func() ([]byte, error) {
			b := make([]byte, 8)
			binary.NativeEndian.PutUint32(b[0:4], s.Flags)
			binary.NativeEndian.PutUint32(b[4:8], 0xffffffff) // mask: set every flag
			return b, nil
		})
		nae.Uint32(ipvsSvcAttrTimeout, s.Timeout)
		nae.Uint32(ipvsSvcAttrNetmask, s.Netmask)
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nlRequest{}, err
	}
	return genlRequest(family, ipvsCmdNewService, ipvsGenlVersion, attrs), nil
}

// newDestRequest is IPVS_CMD_NEW_DEST adding d to the virtual server s (found by
// its key attributes).
func newDestRequest(family uint16, s *mobyipvs.Service, d *mobyipvs.Destination) (nlRequest, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ipvsCmdAttrService, func(nae *netlink.AttributeEncoder) error {
		encodeServiceKey(nae, s)
		return nil
	})
	ae.Nested(ipvsCmdAttrDest, func(nae *netlink.AttributeEncoder) error {
		nae.Bytes(ipvsDestAttrAddr, rawIP(d.Address, d.AddressFamily))
		nae.Bytes(ipvsDestAttrPort, bePort(d.Port))
		nae.Uint32(ipvsDestAttrFwdMethod, d.ConnectionFlags&mobyipvs.ConnectionFlagFwdMask)
		nae.Uint32(ipvsDestAttrWeight, uint32(d.Weight))
		nae.Uint32(ipvsDestAttrUThresh, d.UpperThreshold)
		nae.Uint32(ipvsDestAttrLThresh, d.LowerThreshold)
		nae.Uint16(ipvsDestAttrAF, d.AddressFamily)
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return nlRequest{}, err
	}
	return genlRequest(family, ipvsCmdNewDest, ipvsGenlVersion, attrs), nil
}

// encodeServiceKey writes the attributes the kernel finds a virtual server by.
func encodeServiceKey(ae *netlink.AttributeEncoder, s *mobyipvs.Service) {
	ae.Uint16(ipvsSvcAttrAF, s.AddressFamily)
	ae.Uint16(ipvsSvcAttrProtocol, s.Protocol)
	ae.Bytes(ipvsSvcAttrAddr, rawIP(s.Address, s.AddressFamily))
	ae.Bytes(ipvsSvcAttrPort, bePort(s.Port))
}

// rawIP is the address as the family's 4 or 16 bytes.
func rawIP(ip net.IP, af uint16) []byte {
	if af == syscall.AF_INET {
		return ip.To4()
	}
	return ip.To16()
}

func bePort(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// getFamilyRequest asks the generic netlink controller for a family's id.
func getFamilyRequest(name string) (nlRequest, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(ctrlAttrFamilyName, name)
	attrs, err := ae.Encode()
	if err != nil {
		return nlRequest{}, err
	}
	return genlRequest(genlIDCtrl, ctrlCmdGetFamily, 1, attrs), nil
}

// familyID reads CTRL_ATTR_FAMILY_ID from the controller's answers.
func familyID(answers [][]byte) (uint16, error) {
	for _, a := range answers {
		if len(a) < genlHdrLen {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(a[genlHdrLen:])
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == ctrlAttrFamilyID {
				return ad.Uint16(), nil
			}
		}
	}
	return 0, fmt.Errorf("no family id in the generic netlink controller's answer")
}
