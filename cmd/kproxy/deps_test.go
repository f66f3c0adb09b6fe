package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary must not link test helpers: fakes and namespace builders under
// internal/testing are for tests only.
func TestBinaryLinksNoTestHelpers(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "kproxy.dev/kproxy/internal/testing") {
			t.Errorf("kproxy links %s", pkg)
		}
	}
}

// Linux-only parts are behind build tags: the binary builds for other systems,
// where kernel modes say they need Linux.
func TestBuildsOnOtherSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the module twice")
	}
	for _, goos := range []string{"darwin", "windows"} {
		cmd := exec.Command("go", "build", "-o", "/dev/null", "./...")
		cmd.Dir = "../.."
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go build ./...: %v\n%s", goos, err, out)
		}
	}
}
