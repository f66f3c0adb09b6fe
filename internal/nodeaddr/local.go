package nodeaddr

import (
	"fmt"
	"net"
	"net/netip"
)

// LocalAddresses returns the addresses of the local interfaces of the network
// namespace the process runs in.
func LocalAddresses() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("reading local interface addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, addr.Unmap())
		}
	}
	return out, nil
}

// IsLocal reports whether a is one of addrs or a loopback address (all of 127/8
// answers locally on Linux without being configured).
func IsLocal(a netip.Addr, addrs []netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, x := range addrs {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}
