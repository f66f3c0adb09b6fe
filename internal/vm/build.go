package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildBinary builds a Go main package as a static binary (CGO_ENABLED=0) into the
// test's temp dir and returns its path. pkg is an import path or ./relative path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	goBuild(t, "build", "-o", out, pkg)
	return out
}

// BuildTestBinary compiles a package's tests (go test -c) as a static binary.
func BuildTestBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg)+".test")
	goBuild(t, "test", "-c", "-o", out, pkg)
	return out
}

func goBuild(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
