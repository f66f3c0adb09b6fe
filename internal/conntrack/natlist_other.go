//go:build !linux

package conntrack

import (
	"errors"
	"net/netip"
)

// ListNAT needs Linux's conntrack table.
func ListNAT(netip.AddrPort, uint8) ([]NATFlow, error) {
	return nil, errors.New("reading the conntrack table needs Linux")
}
