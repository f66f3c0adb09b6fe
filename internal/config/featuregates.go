package config

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// Feature gates kube-proxy 1.37 reads that kproxy knows.
const (
	GateKubeProxyIPVS                 = "KubeProxyIPVS"
	GateNFTablesLocalhostNodePorts    = "KubeProxyNFTablesLocalhostNodePorts"
	GateNFTablesNetlink               = "NFTablesNetlink"
	GateAllowServiceExternalIPs       = "AllowServiceExternalIPs"
	GatePreferSameTrafficDistribution = "PreferSameTrafficDistribution"
	GateServiceTrafficDistribution    = "ServiceTrafficDistribution"
	GateMultiCIDRServiceAllocator     = "MultiCIDRServiceAllocator"
	GateComponentFlagz                = "ComponentFlagz"
	GateComponentStatusz              = "ComponentStatusz"
)

// gate is one feature gate's default in kube-proxy 1.37 and what kproxy does with
// a value other than the default.
type gate struct {
	def    bool
	stage  string
	locked bool   // GA: only the default is accepted
	note   string // non-empty: a non-default value is not honoured, and why
}

var knownGates = map[string]gate{
	GateKubeProxyIPVS:                 {def: true, stage: "DEPRECATED"},
	GateNFTablesLocalhostNodePorts:    {def: false, stage: "ALPHA"},
	GateNFTablesNetlink:               {def: true, stage: "BETA", note: "kproxy's nftables mode always talks netlink (it has no nft binary path)"},
	GateAllowServiceExternalIPs:       {def: true, stage: "DEPRECATED"},
	GatePreferSameTrafficDistribution: {def: true, stage: "GA", locked: true},
	GateServiceTrafficDistribution:    {def: true, stage: "GA", locked: true},
	GateMultiCIDRServiceAllocator:     {def: true, stage: "GA", locked: true},
	GateComponentFlagz:                {def: true, stage: "BETA"},
	GateComponentStatusz:              {def: true, stage: "BETA"},
}

// KnownFeatures lists the gates for --help, as kube-proxy's "Name=true|false (STAGE - default=x)".
func KnownFeatures() []string {
	var out []string
	for name, g := range knownGates {
		out = append(out, fmt.Sprintf("%s=true|false (%s - default=%t)", name, g.stage, g.def))
	}
	sort.Strings(out)
	return out
}

// FeatureState is one known gate's stage and effective value.
type FeatureState struct {
	Name, Stage string // Stage is "" for GA, as component-base labels it
	Enabled     bool
}

// FeatureStates lists every known gate with its effective value in c, sorted.
func FeatureStates(c *kpconfig.KubeProxyConfiguration) []FeatureState {
	var out []FeatureState
	for name, g := range knownGates {
		stage := g.stage
		if stage == "GA" {
			stage = ""
		}
		out = append(out, FeatureState{Name: name, Stage: stage, Enabled: FeatureEnabled(c, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// FeatureEnabled says whether a gate is on in c: its value if set, else its 1.37 default.
func FeatureEnabled(c *kpconfig.KubeProxyConfiguration, name string) bool {
	if v, ok := c.FeatureGates[name]; ok {
		return v
	}
	return knownGates[name].def
}

// validateGates reports values kproxy cannot run with: a GA gate set to false, and
// ipvs mode with KubeProxyIPVS off.
func (v *validator) gates(c *kpconfig.KubeProxyConfiguration) {
	for _, name := range slices.Sorted(maps.Keys(c.FeatureGates)) {
		g, ok := knownGates[name]
		if ok && g.locked && c.FeatureGates[name] != g.def {
			v.add("featureGates."+name, "cannot set to %t: the feature is GA and locked to %t", c.FeatureGates[name], g.def)
		}
	}
	if Mode(c) == ModeIPVS && !FeatureEnabled(c, GateKubeProxyIPVS) {
		v.add("featureGates."+GateKubeProxyIPVS, "is false, which disables the ipvs proxy mode that mode: ipvs selects")
	}
}

// gateWarnings names gates kproxy does not know (kube-proxy refuses them; kproxy
// goes on so that a config for a newer kube-proxy still loads) and known gates set
// to a value kproxy does not honour.
func gateWarnings(c *kpconfig.KubeProxyConfiguration) []Warning {
	var out []Warning
	for _, name := range slices.Sorted(maps.Keys(c.FeatureGates)) {
		g, ok := knownGates[name]
		switch {
		case !ok:
			out = append(out, Warning{Field: "featureGates." + truncate(name, 64), Msg: "unknown feature gate; ignored"})
		case g.note != "" && c.FeatureGates[name] != g.def:
			out = append(out, Warning{Field: "featureGates." + name,
				Msg: fmt.Sprintf("%t is not honoured: %s", c.FeatureGates[name], g.note)})
		}
	}
	return out
}

// gatesFlag is --feature-gates: comma-separated Name=bool pairs, added to a map.
type gatesFlag struct{ m *map[string]bool }

func (f gatesFlag) String() string {
	if f.m == nil || *f.m == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(*f.m)) {
		parts = append(parts, k+"="+strconv.FormatBool((*f.m)[k]))
	}
	return strings.Join(parts, ",")
}

func (f gatesFlag) Set(s string) error {
	if *f.m == nil {
		*f.m = map[string]bool{}
	}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s: %w", k, val, err)
		}
		(*f.m)[strings.TrimSpace(k)] = b
	}
	return nil
}

func (gatesFlag) Type() string { return "mapStringBool" }
