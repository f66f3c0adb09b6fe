// Package sysctl reads and writes kernel parameters through /proc/sys. It goes
// through an interface so that callers (conntrack tuning, route_localnet) are tested
// against a temporary directory standing in for /proc/sys.
package sysctl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Interface reads and writes sysctls named with dots or slashes
// ("net.ipv4.conf.all.route_localnet").
type Interface interface {
	Get(name string) (string, error)
	Set(name, value string) error
}

// Dir is an Interface rooted at a directory: "/proc/sys" on a node, a temporary
// directory in tests. /proc/sys/net is per network namespace: it shows the
// namespace of the thread that opens the file.
type Dir string

// New returns the Interface of the running kernel.
func New() Interface { return Dir("/proc/sys") }

func (d Dir) path(name string) string {
	return filepath.Join(string(d), strings.ReplaceAll(name, ".", "/"))
}

// Get returns the value with surrounding whitespace removed.
func (d Dir) Get(name string) (string, error) {
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set writes value.
func (d Dir) Set(name, value string) error {
	f, err := os.OpenFile(d.path(name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", name, err)
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}

// GetInt reads an integer sysctl.
func GetInt(s Interface, name string) (int, error) {
	v, err := s.Get(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %q is not an integer", name, v)
	}
	return n, nil
}

// SetInt writes an integer sysctl.
func SetInt(s Interface, name string, v int) error { return s.Set(name, strconv.Itoa(v)) }

// IsReadOnly reports whether err says the sysctl cannot be written here: /proc/sys
// mounted read-only (most containers), or no permission.
func IsReadOnly(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EACCES)
}
