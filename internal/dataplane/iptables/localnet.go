package iptables

import (
	"log/slog"

	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/sysctl"
)

const sysctlRouteLocalnet = "net.ipv4.conf.all.route_localnet"

// needsRouteLocalnet decides, as kube-proxy 1.37 does, whether NodePorts are served
// on 127.0.0.1: localhostNodePorts is on and nodePortAddresses (unset means "all" in
// iptables mode) includes IPv4 loopback. Only then is route_localnet set, and with it
// the rule that blocks martian packets to 127.0.0.0/8.
func needsRouteLocalnet(localhostNodePorts bool, nodePortAddresses []string) (bool, error) {
	if !localhostNodePorts {
		return false, nil
	}
	return nodeaddr.ContainsIPv4Loopback(nodePortAddresses, nil)
}

// enableLocalnet sets route_localnet when the config needs it and reports whether
// the blocking rule must be installed (whenever route_localnet is wanted, even when
// the write failed: the rule is harmless and route_localnet may have been set by
// someone else).
func enableLocalnet(sys sysctl.Interface, c *Config, log *slog.Logger) error {
	need, err := needsRouteLocalnet(!c.Render.NoLocalhostNodePorts, c.NodePortAddresses)
	if err != nil || !need {
		return err
	}
	c.Render.BlockLocalnet = true
	// NodePorts on 127.0.0.1 are DNATed to pod addresses; the kernel routes such
	// packets only with route_localnet.
	if err := sysctl.SetInt(sys, sysctlRouteLocalnet, 1); err != nil {
		log.Warn("localhost NodePorts will not work: cannot set "+sysctlRouteLocalnet, "err", err)
	}
	return nil
}
