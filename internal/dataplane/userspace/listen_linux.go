package userspace

import (
	"bytes"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func setReusePort(fd uintptr) error {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	return nil
}

// setFreebind6 lets an IPv6 socket bind an address that only a local route
// makes local (IPV6_FREEBIND, Linux 4.15+).
func setFreebind6(fd uintptr) error {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1); err != nil {
		return fmt.Errorf("IPV6_FREEBIND: %w", err)
	}
	return nil
}

// migrateReqSysctl makes the kernel move the connections waiting in a closing
// listener's queue (and half-open ones) to another listener of its SO_REUSEPORT
// group instead of resetting them (Linux 5.14+). It is per network namespace.
const migrateReqSysctl = "/proc/sys/net/ipv4/tcp_migrate_req"

// enableMigrateReq sets net.ipv4.tcp_migrate_req to 1 unless it is already. It
// reports whether it changed the value.
func enableMigrateReq() (bool, error) {
	cur, err := os.ReadFile(migrateReqSysctl)
	if err != nil {
		return false, err
	}
	if string(bytes.TrimSpace(cur)) == "1" {
		return false, nil
	}
	return true, os.WriteFile(migrateReqSysctl, []byte("1"), 0o644)
}
