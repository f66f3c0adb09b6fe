//go:build !linux

package userspace

import (
	"errors"
	"net/netip"
)

// listenerCounts needs /proc/net/tcp: outside Linux no successor is seen.
func listenerCounts([]netip.AddrPort) (map[netip.AddrPort]int, error) {
	return nil, errors.New("listener counts need Linux")
}
