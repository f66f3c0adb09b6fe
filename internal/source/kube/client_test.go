package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
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

func TestClientOptionsApplyToTheRestConfig(t *testing.T) {
	cfg := &rest.Config{}
	applyClientOptions(cfg, ClientOptions{QPS: 50, Burst: 100, ContentType: "application/json", AcceptContentTypes: "application/json"})
	if cfg.QPS != 50 || cfg.Burst != 100 || cfg.ContentType != "application/json" || cfg.AcceptContentTypes != "application/json" {
		t.Errorf("rest config = %+v", cfg)
	}
	cfg = &rest.Config{}
	applyClientOptions(cfg, ClientOptions{})
	if cfg.ContentType != "application/vnd.kubernetes.protobuf" || cfg.QPS != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	got, err := restConfigFor("", "https://10.1.2.3:6443")
	if err != nil || got.Host != "https://10.1.2.3:6443" {
		t.Errorf("--master without kubeconfig: %v %v", got, err)
	}
}
