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

	"kproxy.dev/kproxy/internal/dataplane"
)

// netlinkAddrs adds addresses to kproxy0, or to lo on kernels without dummy links.
type netlinkAddrs struct {
	root    bool
	link    netlink.Link
	created bool
	added   map[netip.Addr]bool
}

func newAddrManager(root bool) addrManager {
	return &netlinkAddrs{root: root, added: map[netip.Addr]bool{}}
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

func (m *netlinkAddrs) add(a netip.Addr) error {
	if err := m.ensureLink(); err != nil {
		return err
	}
	err := netlink.AddrAdd(m.link, hostAddr(a, m.onLo()))
	if errors.Is(err, syscall.EEXIST) {
		return nil // someone else's address: not ours to remove later
	}
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", a, m.link.Attrs().Name, err)
	}
	m.added[a] = true
	return nil
}

func (m *netlinkAddrs) remove(a netip.Addr) error {
	if !m.added[a] {
		return nil
	}
	delete(m.added, a)
	err := netlink.AddrDel(m.link, hostAddr(a, m.onLo()))
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
			out = append(out, addrOf(a))
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
				out = append(out, addrOf(a))
			}
		}
	}
	for _, a := range out {
		m.added[a] = true
	}
	return out, nil
}

func addrOf(a netlink.Addr) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.IP)
	return ip.Unmap()
}

// cleanupLeftovers is `kproxy --cleanup` for this mode: without a daemon's memory,
// it removes kproxy0 and the lo addresses labelled lo:kproxy. IPv6 addresses on lo
// carry no label and are left alone.
func cleanupLeftovers(_ context.Context, o dataplane.Options) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var errs []error
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
