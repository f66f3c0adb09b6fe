// Package config loads kproxy's configuration: a KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1, the file kube-proxy takes), completed with
// kube-proxy's defaults, overridden by command-line flags and validated with field
// paths so that an error says which field is wrong.
package config

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind are what a config file must declare (when it declares them).
const (
	APIVersion = "kubeproxy.config.k8s.io/v1alpha1"
	Kind       = "KubeProxyConfiguration"
)

// Proxy modes. ModeUserspace is kproxy's extension of the Mode field.
const (
	ModeIPTables  = "iptables"
	ModeIPVS      = "ipvs"
	ModeNFTables  = "nftables"
	ModeUserspace = "userspace"
)

// Modes lists the values the mode field accepts ("" means iptables).
var Modes = []string{ModeIPTables, ModeIPVS, ModeNFTables, ModeUserspace}

// Load reads, strictly decodes and defaults a config file. It does not validate:
// flags may still override fields, so call Validate on the final result.
func Load(path string) (*kpconfig.KubeProxyConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Decode strictly decodes YAML or JSON into a defaulted KubeProxyConfiguration: an
// unknown or duplicated field is an error that names it.
func Decode(data []byte) (*kpconfig.KubeProxyConfiguration, error) {
	c := &kpconfig.KubeProxyConfiguration{}
	if unknown := unknownFields(data, reflect.TypeOf(c)); len(unknown) > 0 {
		return nil, fmt.Errorf("decoding %s: unknown field %s", Kind, quoteAll(unknown))
	}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, cleanDecodeError(err)
	}
	if c.APIVersion != "" && c.APIVersion != APIVersion {
		return nil, FieldError{Path: "apiVersion", Msg: fmt.Sprintf("unsupported %q, want %q", c.APIVersion, APIVersion)}
	}
	if c.Kind != "" && c.Kind != Kind {
		return nil, FieldError{Path: "kind", Msg: fmt.Sprintf("unsupported %q, want %q", c.Kind, Kind)}
	}
	SetDefaults(c)
	return c, nil
}

// cleanDecodeError strips the layers of wrapping the YAML and JSON decoders add, so
// the message reads `unknown field "iptables.foo"` rather than three prefixes deep.
func cleanDecodeError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return fmt.Errorf("decoding %s: %s", Kind, msg)
}

// Default returns a configuration holding only kube-proxy's defaults.
func Default() *kpconfig.KubeProxyConfiguration {
	c := &kpconfig.KubeProxyConfiguration{}
	SetDefaults(c)
	return c
}

// Mode returns the effective proxy mode: "" means iptables, as in kube-proxy.
func Mode(c *kpconfig.KubeProxyConfiguration) string {
	if c.Mode == "" {
		return ModeIPTables
	}
	return string(c.Mode)
}

func quoteAll(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Write saves c as YAML that Load reads back unchanged (kube-proxy's --write-config-to).
func Write(c *kpconfig.KubeProxyConfiguration, path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", Kind, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("--write-config-to: %w", err)
	}
	return nil
}
