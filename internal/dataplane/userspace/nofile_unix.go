//go:build unix

package userspace

import "syscall"

// nofileLimit is the process's soft descriptor limit (Go raises it to the hard
// limit at start), or 0 when unknown.
func nofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Cur)
}
