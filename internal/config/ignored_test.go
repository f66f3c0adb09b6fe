package config

import (
	"strings"
	"testing"
)

func warningsByField(ws []Warning) map[string]string {
	m := map[string]string{}
	for _, w := range ws {
		m[w.Field] = w.Msg
	}
	return m
}

func TestIgnoredSettingsAreNamed(t *testing.T) {
	c, _, err := decodeBody(`detectLocalMode: NodeCIDR
detectLocal:
  interfaceNamePrefix: veth
featureGates:
  NoSuchGate: true
  AllowServiceExternalIPs: false
  KubeProxyNFTablesLocalhostNodePorts: true
  NFTablesNetlink: false
logging:
  vmodule:
  - filePattern: sync*
    verbosity: 4
  flushFrequency: 1s
  options:
    json:
      infoBufferSize: 1Mi
showHiddenMetricsForVersion: "1.36"
winkernel:
  enableDSR: true
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	got := warningsByField(Ignored(c))
	want := map[string]string{
		"detectLocalMode":                  "NodeCIDR is not implemented",
		"detectLocal.interfaceNamePrefix":  "used only with detectLocalMode: InterfaceNamePrefix",
		"featureGates.NoSuchGate":          "unknown feature gate",
		"featureGates.NFTablesNetlink":     "false is not honoured",
		"logging.vmodule":                  "not implemented",
		"logging.flushFrequency":           "ignored",
		"logging.options.*.infoBufferSize": "does not buffer",
		"showHiddenMetricsForVersion":      "hides no metrics",
		"winkernel":                        "Windows",
	}
	for field, msg := range want {
		if !strings.Contains(got[field], msg) {
			t.Errorf("%s: warning %q, want it to contain %q", field, got[field], msg)
		}
	}
	for _, honoured := range []string{"featureGates.AllowServiceExternalIPs", "featureGates.KubeProxyNFTablesLocalhostNodePorts"} {
		if _, ok := got[honoured]; ok {
			t.Errorf("%s is honoured, yet warned about", honoured)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d warnings, want %d: %v", len(got), len(want), got)
	}
}

func TestDefaultsWarnAboutNothing(t *testing.T) {
	if ws := Ignored(Default()); len(ws) != 0 {
		t.Errorf("the defaults have ignored settings: %v", ws)
	}
}

func TestGateAndDetectLocalValidation(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"locked gate":    {"featureGates:\n  MultiCIDRServiceAllocator: false\n", "featureGates.MultiCIDRServiceAllocator: cannot set to false"},
		"ipvs gate off":  {"mode: ipvs\nfeatureGates:\n  KubeProxyIPVS: false\n", "featureGates.KubeProxyIPVS: is false"},
		"bad local mode": {"detectLocalMode: Magic\n", `detectLocalMode: unknown mode "Magic"`},
		"bridge missing": {"detectLocalMode: BridgeInterface\n", "detectLocal.bridgeInterface: required"},
		"prefix missing": {"detectLocalMode: InterfaceNamePrefix\n", "detectLocal.interfaceNamePrefix: required"},
		"logging format": {"logging:\n  format: xml\n", `logging.format: unsupported format "xml"`},
	}
	for name, tc := range cases {
		c, _, err := decodeBody(tc.yaml)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := Validate(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func TestFeatureGatesFlag(t *testing.T) {
	f, _ := parse(t, "--feature-gates", "A=true, B=false", "--feature-gates", "C=1")
	c, _, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.FeatureGates["A"] != true || c.FeatureGates["B"] != false || c.FeatureGates["C"] != true || len(c.FeatureGates) != 3 {
		t.Errorf("gates = %v", c.FeatureGates)
	}
	var m map[string]bool
	if err := (gatesFlag{&m}).Set("A"); err == nil {
		t.Error("a gate without a value was accepted")
	}
	if err := (gatesFlag{&m}).Set("A=maybe"); err == nil {
		t.Error("a non-bool gate value was accepted")
	}
}
