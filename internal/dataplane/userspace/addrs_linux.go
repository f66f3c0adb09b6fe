//go:build linux

package userspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/localroute"
)

// netlinkAddrs makes Service addresses local on kproxy0, or on lo on kernels
// without dummy links. An address becomes a /32 or /128 route of type local in
// the local table (protocol localroute.Proto, 107), not an interface address: the kernel
// walks a device's whole address list (and, for IPv4, re-checks every route of
// the device) on each address added or removed, so 10,000 ClusterIPs as
// addresses cost O(n²), while a route is one trie insert. The address is then as
// local as an interface address for routing and replies (traffic to it is
// delivered to this host with itself as source), and for bind: IPv4 as is,
// IPv6 with IPV6_FREEBIND, which the listeners set (listen.go).
type netlinkAddrs struct {
	root    bool
	link    netlink.Link
	created bool
	// h keeps one netlink socket for the adds and removes: the package-level
	// calls open one per request (socket, bind, epoll registration).
	h *netlink.Handle
	// added holds what this manager put on the host, and how (an address from
	// an earlier kproxy that added addresses is removed as an address).
	added map[netip.Addr]addedAs
}

// addedAs says how an address was made local.
type addedAs uint8

const (
	asRoute addedAs = iota
	asIfAddr
)

func newAddrManager(root bool) addrManager {
	return &netlinkAddrs{root: root, added: map[netip.Addr]addedAs{}}
}

func (m *netlinkAddrs) canAdd() bool { return m.root }

// ensureLink finds or makes kproxy0; where the kernel has no dummy driver it settles
// for lo, which also makes an address local without routing it anywhere.
func (m *netlinkAddrs) ensureLink() error {
	if m.link != nil {
		return nil
	}
	if l, err := netlink.LinkByName(dummyLink); err == nil {
		m.link = l
		return netlink.LinkSetUp(l)
	}
	addErr := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: dummyLink}})
	if addErr == nil {
		l, err := netlink.LinkByName(dummyLink)
		if err != nil {
			return fmt.Errorf("finding %s after creating it: %w", dummyLink, err)
		}
		m.link, m.created = l, true
		return netlink.LinkSetUp(l)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("creating dummy link %s: %v; and no lo to fall back to: %w", dummyLink, addErr, err)
	}
	m.link = lo
	return nil
}

func (m *netlinkAddrs) onLo() bool { return m.link != nil && m.link.Attrs().Name == "lo" }

func hostAddr(a netip.Addr, lo bool) *netlink.Addr {
	nl := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is4() && lo {
		nl.Label = loLabel
	}
	if a.Is6() {
		// Without NODAD the address stays tentative for a while and bind fails.
		nl.Flags = syscall.IFA_F_NODAD
	}
	return nl
}

// localRoute is the route that makes a local on link.
func localRoute(link netlink.Link, a netip.Addr) *netlink.Route {
	return localroute.Route(link.Attrs().Index, a)
}

// handle returns the manager's netlink handle, opening it on first use.
func (m *netlinkAddrs) handle() (*netlink.Handle, error) {
	if m.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("opening a netlink socket: %w", err)
		}
		m.h = h
	}
	return m.h, nil
}

func (m *netlinkAddrs) add(a netip.Addr) error {
	if err := m.ensureLink(); err != nil {
		return err
	}
	h, err := m.handle()
	if err != nil {
		return err
	}
	err = h.RouteAdd(localRoute(m.link, a))
	if errors.Is(err, syscall.EEXIST) {
		return nil // someone else's address: not ours to remove later
	}
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", a, m.link.Attrs().Name, err)
	}
	m.added[a] = asRoute
	return nil
}

func (m *netlinkAddrs) remove(a netip.Addr) error {
	how, ok := m.added[a]
	if !ok {
		return nil
	}
	delete(m.added, a)
	h, err := m.handle()
	if err != nil {
		return err
	}
	if how == asRoute {
		err = h.RouteDel(localRoute(m.link, a))
		if errors.Is(err, syscall.ESRCH) {
			err = nil
		}
	} else {
		err = h.AddrDel(m.link, hostAddr(a, m.onLo()))
	}
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("removing %s from %s: %w", a, m.link.Attrs().Name, err)
	}
	return nil
}

func (m *netlinkAddrs) cleanup() error {
	var errs []error
	for a := range m.added {
		errs = append(errs, m.remove(a))
	}
	if m.created {
		if err := netlink.LinkDel(m.link); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", dummyLink, err))
		}
		m.link, m.created = nil, false
	}
	if m.h != nil {
		m.h.Close()
		m.h = nil
	}
	return errors.Join(errs...)
}

func (m *netlinkAddrs) adopt() ([]netip.Addr, error) {
	if !m.root {
		return nil, nil
	}
	var out []netip.Addr
	if l, err := netlink.LinkByName(dummyLink); err == nil {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", dummyLink, err)
		}
		m.link = l
		for _, a := range addrs {
			out = m.adopted(out, addrOf(a), asIfAddr)
		}
	} else {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return nil, err
		}
		addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of lo: %w", err)
		}
		for _, a := range addrs {
			if a.Label == loLabel {
				m.link = lo
				out = m.adopted(out, addrOf(a), asIfAddr)
			}
		}
	}
	routes, err := ourRoutes()
	if err != nil {
		return out, err
	}
	for _, r := range routes {
		if m.link == nil {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return out, fmt.Errorf("finding the link of route %s: %w", r.Dst, err)
			}
			if n := l.Attrs().Name; n != dummyLink && n != "lo" {
				continue // another mode's (ipvs: kube-ipvs0)
			}
			m.link = l
		}
		if r.LinkIndex != m.link.Attrs().Index {
			continue // on a link kproxy does not use: not its route to remove
		}
		if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok {
			out = m.adopted(out, ip.Unmap(), asRoute)
		}
	}
	return out, nil
}

func (m *netlinkAddrs) adopted(out []netip.Addr, a netip.Addr, how addedAs) []netip.Addr {
	m.added[a] = how
	return append(out, a)
}

// ourRoutes lists the local routes kproxy added (Service addresses).
func ourRoutes() ([]netlink.Route, error) { return localroute.List(nil, 0) }

func addrOf(a netlink.Addr) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.IP)
	return ip.Unmap()
}

// cleanupLeftovers is `kproxy --cleanup` for this mode: without a daemon's memory,
// it removes kproxy's local routes (protocol localroute.Proto, 107), kproxy0 and the lo
// addresses labelled lo:kproxy. IPv6 addresses on lo carry no label and are left
// alone.
func cleanupLeftovers(_ context.Context, o dataplane.Options) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var errs []error
	routes, err := ourRoutes()
	errs = append(errs, err)
	for _, r := range routes {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("removing local route %s: %w", r.Dst, err))
		}
	}
	if len(routes) > 0 {
		o.Log().Info("removed leftover Service address routes", "routes", len(routes))
	}
	if l, err := netlink.LinkByName(dummyLink); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", dummyLink, err))
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	addrs, err := netlink.AddrList(lo, netlink.FAMILY_V4)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, a := range addrs {
		if a.Label == loLabel {
			if err := netlink.AddrDel(lo, &a); err != nil {
				errs = append(errs, fmt.Errorf("removing %s from lo: %w", a.IPNet, err))
			} else {
				o.Log().Info("removed leftover Service address", "address", a.IPNet.String(), "link", "lo")
			}
		}
	}
	return errors.Join(errs...)
}
