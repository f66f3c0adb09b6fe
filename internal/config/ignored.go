package config

import (
	"fmt"
	"strings"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// Detect-local modes kube-proxy accepts. kproxy implements ClusterCIDR.
const (
	LocalModeClusterCIDR         = "ClusterCIDR"
	LocalModeNodeCIDR            = "NodeCIDR"
	LocalModeBridgeInterface     = "BridgeInterface"
	LocalModeInterfaceNamePrefix = "InterfaceNamePrefix"
)

// Ignored lists the settings of the effective configuration that kproxy accepts
// but does not honour, each with the reason, so that the daemon can say so once
// at start. Everything not listed here is implemented.
func Ignored(c *kpconfig.KubeProxyConfiguration) []Warning {
	var out []Warning
	out = append(out, detectLocalWarnings(c)...)
	out = append(out, gateWarnings(c)...)
	out = append(out, loggingWarnings(c)...)
	if Mode(c) == ModeEBPF && (c.NFTables.MasqueradeAll || c.IPTables.MasqueradeAll) {
		out = append(out, Warning{"nftables.masqueradeAll", "ebpf mode: pods and the node reach ClusterIP endpoints " +
			"directly (socket LB, no NAT), so masqueradeAll applies only to the traffic the nftables rules handle " +
			"(outside clients, NodePorts, externalIPs, LoadBalancer IPs)"})
	}
	if c.ShowHiddenMetricsForVersion != "" {
		out = append(out, Warning{"showHiddenMetricsForVersion", "kproxy hides no metrics; ignored"})
	}
	if w := c.Winkernel; w.NetworkName != "" || w.SourceVip != "" || w.EnableDSR || w.RootHnsEndpointName != "" ||
		w.ForwardHealthCheckVip || c.WindowsRunAsService {
		out = append(out, Warning{"winkernel", "Windows settings; kproxy runs on Linux only; ignored"})
	}
	return out
}

func detectLocalWarnings(c *kpconfig.KubeProxyConfiguration) []Warning {
	var out []Warning
	mode := string(c.DetectLocalMode)
	if mode != "" && mode != LocalModeClusterCIDR {
		out = append(out, Warning{"detectLocalMode", fmt.Sprintf("%s is not implemented: kproxy tells local "+
			"traffic by clusterCIDR only (%s)", mode, clusterCIDRNote(c))})
	}
	if mode != LocalModeBridgeInterface && c.DetectLocal.BridgeInterface != "" {
		out = append(out, Warning{"detectLocal.bridgeInterface", "used only with detectLocalMode: BridgeInterface; ignored"})
	}
	if mode != LocalModeInterfaceNamePrefix && c.DetectLocal.InterfaceNamePrefix != "" {
		out = append(out, Warning{"detectLocal.interfaceNamePrefix", "used only with detectLocalMode: InterfaceNamePrefix; ignored"})
	}
	return out
}

func clusterCIDRNote(c *kpconfig.KubeProxyConfiguration) string {
	if c.ClusterCIDR == "" {
		return "clusterCIDR is empty, so no traffic counts as local"
	}
	return "clusterCIDR " + c.ClusterCIDR
}

func loggingWarnings(c *kpconfig.KubeProxyConfiguration) []Warning {
	l := &c.Logging
	var out []Warning
	if len(l.VModule) > 0 {
		out = append(out, Warning{"logging.vmodule", "per-file verbosity is not implemented; logging.verbosity applies to every file"})
	}
	if l.FlushFrequency.Duration.Duration != 0 && l.FlushFrequency.Duration.Duration != DefaultLogFlushFrequency {
		out = append(out, Warning{"logging.flushFrequency", "kproxy writes every log line at once; ignored"})
	}
	if !l.Options.Text.InfoBufferSize.IsZero() || !l.Options.JSON.InfoBufferSize.IsZero() {
		out = append(out, Warning{"logging.options.*.infoBufferSize", "kproxy does not buffer log output; ignored"})
	}
	return out
}

// validateDetectLocal checks detectLocalMode as kube-proxy's validation does.
func (v *validator) detectLocal(c *kpconfig.KubeProxyConfiguration) {
	switch string(c.DetectLocalMode) {
	case "", LocalModeClusterCIDR, LocalModeNodeCIDR:
	case LocalModeBridgeInterface:
		if strings.TrimSpace(c.DetectLocal.BridgeInterface) == "" {
			v.add("detectLocal.bridgeInterface", "required when detectLocalMode is BridgeInterface")
		}
	case LocalModeInterfaceNamePrefix:
		if strings.TrimSpace(c.DetectLocal.InterfaceNamePrefix) == "" {
			v.add("detectLocal.interfaceNamePrefix", "required when detectLocalMode is InterfaceNamePrefix")
		}
	default:
		v.add("detectLocalMode", "unknown mode %q (valid: ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix)",
			truncate(string(c.DetectLocalMode), 64))
	}
}

// validateLogging checks the logging section the daemon honours.
func (v *validator) logging(c *kpconfig.KubeProxyConfiguration) {
	switch c.Logging.Format {
	case "", LogFormatText, LogFormatJSON:
	default:
		v.add("logging.format", "unsupported format %q (valid: text, json)", truncate(c.Logging.Format, 64))
	}
}
