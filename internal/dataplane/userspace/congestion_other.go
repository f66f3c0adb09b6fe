//go:build !linux

package userspace

import (
	"net"
	"syscall"
)

// Only Linux paces sockets in the TCP stack (congestion_linux.go).

func chooseLocalCongestion(string, syscall.RawConn) error { return nil }

func restoreDefaultCongestion(*net.TCPConn) error { return nil }

func congestionChoice() (def, local string) { return "", "" }
