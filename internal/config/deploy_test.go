package config

import (
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The ConfigMap shipped in deploy/ must hold a configuration kproxy accepts, since
// operators start from it.
func TestDeployConfigMapLoads(t *testing.T) {
	data, err := os.ReadFile("../../deploy/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm v1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		t.Fatalf("deploy/configmap.yaml: %v", err)
	}
	conf, ok := cm.Data["config.conf"]
	if !ok {
		t.Fatal("deploy/configmap.yaml: data[config.conf] missing")
	}
	c, notes, err := Decode([]byte(conf))
	if err != nil {
		t.Fatalf("deploy/configmap.yaml: data[config.conf]: %v", err)
	}
	if len(notes.Warnings) > 0 {
		t.Errorf("deploy/configmap.yaml: data[config.conf]: warnings %v", notes.Warnings)
	}
	if err := Validate(c); err != nil {
		t.Fatalf("deploy/configmap.yaml: data[config.conf]: %v", err)
	}
	if got := Mode(c); got != "nftables" {
		t.Errorf("mode %q, want nftables", got)
	}
}
