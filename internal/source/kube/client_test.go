package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildClientFromKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cs, err := BuildClient(path)
	if err != nil || cs == nil {
		t.Fatalf("BuildClient: %v", err)
	}
}

func TestBuildClientErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := BuildClient(missing)
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig "+missing) {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err = BuildClient("")
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") || !strings.Contains(err.Error(), "--services-from") {
		t.Fatalf("not in cluster: %v", err)
	}
}
