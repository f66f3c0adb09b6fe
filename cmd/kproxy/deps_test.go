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

// The kube source lists and watches through its own REST clients and scheme
// (internal/source/kubescheme): client-go's clientset, informers and full scheme
// link every built-in API group, whose initialisers alone kept ~20 MiB of the
// binary resident in every kproxy process (docs/performance.md, "The process
// baseline"). Tests may use them (fake clientsets), the binary must not.
func TestBinaryLinksNoClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{
		"k8s.io/client-go/kubernetes",
		"k8s.io/client-go/informers",
		"k8s.io/client-go/discovery",
		"k8s.io/client-go/gentype",
		"k8s.io/api/apps/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if pkg == b || strings.HasPrefix(pkg, b+"/") || strings.HasSuffix(b, "/") && strings.HasPrefix(pkg, b) {
				t.Errorf("kproxy links %s", pkg)
			}
		}
	}
}
