//go:build linux

package ipvs

import (
	"net"
	"net/netip"
	"syscall"

	mobyipvs "github.com/moby/ipvs"
)

// toService converts a virtual server to the netlink form.
func toService(vs *virtualServer) *mobyipvs.Service {
	s := &mobyipvs.Service{
		Address:       net.IP(vs.Key.Addr.AsSlice()),
		Protocol:      vs.Key.Proto,
		Port:          vs.Key.Port,
		SchedName:     vs.Scheduler,
		Flags:         vs.Flags,
		Timeout:       vs.Timeout,
		AddressFamily: syscall.AF_INET,
		Netmask:       0xffffffff,
	}
	if vs.Key.Addr.Is6() {
		s.AddressFamily = syscall.AF_INET6
		s.Netmask = 128
	}
	return s
}

// keyOnlyService is enough for the kernel to find the virtual server.
func keyOnlyService(k vsKey) *mobyipvs.Service {
	return toService(&virtualServer{Key: k})
}

func toDestination(a netip.AddrPort, weight int) *mobyipvs.Destination {
	d := &mobyipvs.Destination{
		Address:         net.IP(a.Addr().AsSlice()),
		Port:            a.Port(),
		Weight:          weight,
		ConnectionFlags: mobyipvs.ConnectionFlagMasq,
		AddressFamily:   syscall.AF_INET,
	}
	if a.Addr().Is6() {
		d.AddressFamily = syscall.AF_INET6
	}
	return d
}

// fromService reads a kernel virtual server (without real servers); ok is false for
// fwmark services, which kproxy never creates.
func fromService(s *mobyipvs.Service) (virtualServer, bool) {
	if s.FWMark != 0 {
		return virtualServer{}, false
	}
	a, ok := netip.AddrFromSlice(s.Address)
	if !ok {
		return virtualServer{}, false
	}
	if s.AddressFamily == syscall.AF_INET {
		a = a.Unmap()
	}
	return virtualServer{
		Key:       vsKey{Addr: a, Port: s.Port, Proto: s.Protocol},
		Scheduler: s.SchedName,
		Flags:     s.Flags &^ flagHashed,
		Timeout:   s.Timeout,
	}, true
}

func destAddr(d *mobyipvs.Destination) netip.AddrPort {
	a, _ := netip.AddrFromSlice(d.Address)
	if d.AddressFamily == syscall.AF_INET {
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, d.Port)
}
