//go:build linux

package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/mdlayher/netlink"
	vnetlink "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddAddrs binds host addresses (/32, /128) to the link with RTM_NEWADDR
// messages, many per sendmsg; one error per address. An address already bound
// is not an error.
func (netlinkLinks) AddAddrs(name string, addrs []netip.Addr) []error {
	errs := make([]error, len(addrs))
	if len(addrs) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	l, err := vnetlink.LinkByName(name)
	if err != nil {
		return fail(err)
	}
	s, err := openNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	reqs := make([]nlRequest, len(addrs))
	for i, a := range addrs {
		if reqs[i], err = newAddrRequest(l.Attrs().Index, a); err != nil {
			return fail(err)
		}
	}
	for i, err := range s.exec(reqs) {
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			errs[i] = err
		}
	}
	return errs
}

// newAddrRequest is RTM_NEWADDR of a as a host address of the link index:
// struct ifaddrmsg {family, prefixlen, flags, scope u8; index u32}, then
// IFA_LOCAL (IPv4) and IFA_ADDRESS.
func newAddrRequest(index int, a netip.Addr) (nlRequest, error) {
	a = a.Unmap()
	family := byte(unix.AF_INET)
	if a.Is6() {
		family = unix.AF_INET6
	}
	hdr := make([]byte, 8)
	hdr[0], hdr[1] = family, byte(a.BitLen())
	binary.NativeEndian.PutUint32(hdr[4:8], uint32(index))
	ae := netlink.NewAttributeEncoder()
	if a.Is4() {
		ae.Bytes(unix.IFA_LOCAL, a.AsSlice())
	}
	ae.Bytes(unix.IFA_ADDRESS, a.AsSlice())
	attrs, err := ae.Encode()
	if err != nil {
		return nlRequest{}, fmt.Errorf("encode address %s: %w", a, err)
	}
	return nlRequest{Type: unix.RTM_NEWADDR, Flags: unix.NLM_F_CREATE | unix.NLM_F_EXCL, Data: append(hdr, attrs...)}, nil
}
