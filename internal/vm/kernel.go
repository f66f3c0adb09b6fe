// Package vm boots a Debian kernel under qemu with a small initramfs so that tests
// can exercise kernel features the host lacks (IPVS, dummy devices). It is test-only
// support code: scripts/fetch-test-kernel.sh fills the kernel cache it reads.
//
// A typical test builds static binaries (BuildBinary, BuildTestBinary), then calls
// Run with a guest shell script; Run builds the initramfs, boots qemu with TCG,
// streams the console and returns what the script printed and its exit status.
package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DefaultCache is where scripts/fetch-test-kernel.sh extracts the kernel.
const DefaultCache = "/var/cache/kproxy-vm"

// Kernel is an extracted Debian kernel image package.
type Kernel struct {
	// Root is the dpkg -x tree (boot/, lib/modules/VERSION/).
	Root    string
	Version string
}

// Vmlinuz is the kernel image path.
func (k Kernel) Vmlinuz() string { return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Version) }

// ModulesDir is lib/modules/VERSION inside Root.
func (k Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib", "modules", k.Version) }

// CacheDir is $KPROXY_VM_CACHE or DefaultCache.
func CacheDir() string {
	if d := os.Getenv("KPROXY_VM_CACHE"); d != "" {
		return d
	}
	return DefaultCache
}

// Locate finds the cached kernel and checks that qemu is installed.
func Locate() (Kernel, error) {
	dir := CacheDir()
	fix := "run scripts/install-test-deps.sh (or scripts/fetch-test-kernel.sh)"
	b, err := os.ReadFile(filepath.Join(dir, "kernel-version"))
	if err != nil {
		return Kernel{}, fmt.Errorf("vm: no test kernel in %s: %v; %s", dir, err, fix)
	}
	k := Kernel{Root: filepath.Join(dir, "root"), Version: strings.TrimSpace(string(b))}
	if _, err := os.Stat(k.Vmlinuz()); err != nil {
		return Kernel{}, fmt.Errorf("vm: kernel image missing: %v; %s", err, fix)
	}
	if _, err := os.Stat(filepath.Join(k.ModulesDir(), "modules.dep")); err != nil {
		return Kernel{}, fmt.Errorf("vm: modules.dep missing (depmod not run): %v; %s", err, fix)
	}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		return Kernel{}, fmt.Errorf("vm: %s not found: %v; apt-get install qemu-system-x86", qemuBinary, err)
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		return Kernel{}, fmt.Errorf("vm: static busybox missing at %s: apt-get install busybox-static", busyboxPath)
	}
	return k, nil
}

// Require returns the kernel or ends the test. It skips when not root (the guest tests
// are kernel tests, run as root like every kernel test here) and with -short outside
// CI; it fails with the fix when the kernel cache or qemu is missing.
func Require(t testing.TB) Kernel {
	t.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("vm: -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("vm: VM tests run as root")
	}
	k, err := Locate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var errNoMarker = errors.New("vm: guest did not print its end marker (crash, panic or timeout)")
