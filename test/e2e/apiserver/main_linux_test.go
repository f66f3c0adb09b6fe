//go:build linux && e2e_apiserver

package apiserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var kproxyBin string

// TestMain builds (or finds cached) kube-apiserver, kubectl and etcd, and kproxy.
// Without root the tests skip (they need network namespaces), so nothing is built.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	var err error
	if bins, err = buildBinaries(filepath.Join(root, "scripts", "build-apiserver.sh")); err != nil {
		fmt.Fprintln(os.Stderr, "apiserver e2e:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "kproxy-apiserver-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kproxyBin = filepath.Join(dir, "kproxy")
	cmd := exec.Command("go", "build", "-o", kproxyBin, "kproxy.dev/kproxy/cmd/kproxy")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kproxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
