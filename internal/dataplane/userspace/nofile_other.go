//go:build !unix

package userspace

// nofileLimit is unknown outside Unix: the default caps use fixed values.
func nofileLimit() uint64 { return 0 }
