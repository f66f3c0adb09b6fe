//go:build !linux

package userspace

import (
	"context"
	"errors"
	"net/netip"

	"kproxy.dev/kproxy/internal/dataplane"
)

type noAddrs struct{}

func newAddrManager(bool) addrManager { return noAddrs{} }

func (noAddrs) canAdd() bool { return false }
func (noAddrs) add(netip.Addr) error {
	return errors.New("adding Service addresses is only implemented on Linux")
}
func (noAddrs) remove(netip.Addr) error      { return nil }
func (noAddrs) cleanup() error               { return nil }
func (noAddrs) adopt() ([]netip.Addr, error) { return nil, nil }

func cleanupLeftovers(context.Context, dataplane.Options) error { return nil }
