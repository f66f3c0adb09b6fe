//go:build linux

package ipvs

import (
	"errors"
	"net/netip"
	"syscall"

	vnetlink "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/localroute"
)

// AddAddrs makes addresses local through the link with RTM_NEWROUTE messages
// (localroute), many per sendmsg; one error per address. A route that exists is
// not an error.
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
		data, err := localroute.NewRouteMessage(l.Attrs().Index, a)
		if err != nil {
			return fail(err)
		}
		reqs[i] = nlRequest{Type: unix.RTM_NEWROUTE, Flags: localroute.AppendFlags, Data: data}
	}
	for i, err := range s.exec(reqs) {
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			errs[i] = err
		}
	}
	return errs
}
