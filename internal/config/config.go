// Package config loads kproxy's configuration: a KubeProxyConfiguration
// (kubeproxy.config.k8s.io/v1alpha1, the file kube-proxy takes), completed with
// kube-proxy's defaults and validated with field paths so that an error says which
// field is wrong. Precedence is kube-proxy's: with --config the file wins over the
// config flags (logging flags and --hostname-override still apply). Unknown and
// removed fields are warnings naming the field, as kube-proxy's lenient decoding
// makes them; a malformed file is an error.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind are what a config file must declare.
const (
	APIVersion = "kubeproxy.config.k8s.io/v1alpha1"
	Kind       = "KubeProxyConfiguration"
)

// Proxy modes. ModeUserspace and ModeEBPF are kproxy's extensions of the Mode
// field.
const (
	ModeIPTables  = "iptables"
	ModeIPVS      = "ipvs"
	ModeNFTables  = "nftables"
	ModeUserspace = "userspace"
	// ModeEBPF is socket load balancing for east-west traffic, with the nftables
	// mode's rules (kproxy's nftables table) for north-south traffic.
	ModeEBPF = "ebpf"
)

// Modes lists the values the mode field accepts ("" means iptables).
var Modes = []string{ModeIPTables, ModeIPVS, ModeNFTables, ModeUserspace, ModeEBPF}

// SettingsMode is the mode whose settings (the config section's sync periods,
// nodePortAddresses' default, conntrack tuning, mode metrics, and kube-proxy's
// rules removed at start) apply to mode: the ebpf mode runs the nftables mode for
// north-south traffic, so it takes the nftables mode's; every other mode takes
// its own.
func SettingsMode(mode string) string {
	if mode == ModeEBPF {
		return ModeNFTables
	}
	return mode
}

// Warning is a problem with one field that does not stop kproxy: the field is
// ignored or replaced, and the operator is told once at start.
type Warning struct {
	Field string
	Msg   string
}

func (w Warning) String() string { return w.Field + ": " + w.Msg }

// Notes is what decoding a file found besides the configuration itself.
type Notes struct {
	// Warnings are unknown, removed or duplicated fields (ignored).
	Warnings []Warning
	// Defaulted are fields given as zero that took kube-proxy's default, as
	// "path=default" (kube-proxy does the same without saying so).
	Defaulted []string
}

// MaxFileBytes bounds the config file: kubeadm's is under 2 KiB, and decoding a
// large document costs many times its size in memory.
const MaxFileBytes = 1 << 20

// Load reads and decodes a config file. It does not validate: call Validate on
// the effective configuration.
func Load(path string) (*kpconfig.KubeProxyConfiguration, Notes, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, Notes{}, err
	}
	c, notes, err := Decode(data)
	if err != nil {
		return nil, notes, fmt.Errorf("config %s: %w", path, err)
	}
	return c, notes, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// Decode decodes YAML or JSON into a defaulted KubeProxyConfiguration the way
// kube-proxy does: apiVersion and kind are required; a syntax or type error is
// fatal; unknown, removed and duplicated fields are warnings naming the field.
func Decode(data []byte) (*kpconfig.KubeProxyConfiguration, Notes, error) {
	var notes Notes
	doc, err := decodeDocument(data)
	if err != nil {
		return nil, notes, err
	}
	if err := checkTypeMeta(doc); err != nil {
		return nil, notes, err
	}
	c := &kpconfig.KubeProxyConfiguration{}
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, notes, cleanDecodeError(err)
	}
	notes.Warnings = fieldWarnings(data, doc)
	notes.Defaulted = zeroDefaulted(doc)
	SetDefaults(c)
	return c, notes, nil
}

// decodeDocument parses the file into a generic object: an empty file, a
// syntax error or a document that is not an object is an error.
func decodeDocument(data []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, FieldError{Path: "apiVersion", Msg: "the config file is empty: apiVersion: " + APIVersion +
			" and kind: " + Kind + " are required"}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, cleanDecodeError(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil || doc == nil {
		return nil, fmt.Errorf("decoding %s: the document must be a YAML or JSON object", Kind)
	}
	return doc, nil
}

// checkTypeMeta requires kube-proxy's apiVersion and kind, as its decoder does.
func checkTypeMeta(doc map[string]any) error {
	for _, f := range []struct{ field, want string }{{"apiVersion", APIVersion}, {"kind", Kind}} {
		v, ok := doc[f.field]
		if !ok || v == "" {
			return FieldError{Path: f.field, Msg: fmt.Sprintf("required: want %q", f.want)}
		}
		if s, _ := v.(string); s != f.want {
			return FieldError{Path: f.field, Msg: fmt.Sprintf("unsupported %s, want %q", truncate(fmt.Sprint(v), 64), f.want)}
		}
	}
	return nil
}

// cleanDecodeError strips the layers of wrapping the YAML and JSON decoders add, so
// the message reads `cannot unmarshal ... "iptables.syncPeriod"` rather than three
// prefixes deep.
func cleanDecodeError(err error) error {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: ", "error converting YAML to JSON: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return fmt.Errorf("decoding %s: %s", Kind, truncate(msg, 512))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "...(truncated)"
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
