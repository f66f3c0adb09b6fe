//go:build !linux

package userspace

import "errors"

// Outside Linux the listeners are not shared: a restart binds once the old
// process has closed them.
func setReusePort(uintptr) error { return nil }

// setFreebind6 is needed only for the IPv6 routes kproxy adds on Linux.
func setFreebind6(uintptr) error { return nil }

func enableMigrateReq() (bool, error) {
	return false, errors.New("connection migration between listeners needs Linux")
}
