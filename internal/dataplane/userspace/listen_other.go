//go:build !linux

package userspace

import "errors"

// Outside Linux the listeners are not shared: a restart binds once the old
// process has closed them.
func setReusePort(uintptr) error { return nil }

func enableMigrateReq() (bool, error) {
	return false, errors.New("connection migration between listeners needs Linux")
}
