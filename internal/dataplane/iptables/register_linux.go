//go:build linux

package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/sysctl"
)

func init() {
	dataplane.Register(dataplane.Mode{
		Name:      "iptables",
		New:       newFromOptions,
		KernelNAT: true,
		Cleanup:   func(ctx context.Context, _ dataplane.Options) error { return CleanupAll(ctx) },
	})
}

func newFromOptions(o dataplane.Options) (dataplane.Programmer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	be, err := DetectBackend(ctx)
	if err != nil {
		return nil, fmt.Errorf("iptables mode: %w", err)
	}
	c, err := configFromOptions(o)
	if err != nil {
		return nil, err
	}
	if err := enableLocalnet(sysctl.New(), &c, o.Log()); err != nil {
		return nil, fmt.Errorf("iptables mode: %w", err)
	}
	c.Runner = ExecRunner{Backend: be}
	o.Log().Info("iptables mode", "backend", be)
	return NewProxier(c), nil
}

// configFromOptions maps the KubeProxyConfiguration onto Config.
func configFromOptions(o dataplane.Options) (Config, error) {
	c := Config{Registerer: o.Registerer, Logger: o.Log(), Render: RenderConfig{MasqueradeBit: 14}}
	kc := o.Config
	if kc == nil {
		return c, nil
	}
	if kc.IPTables.MasqueradeBit != nil {
		c.Render.MasqueradeBit = int(*kc.IPTables.MasqueradeBit)
	}
	c.Render.MasqueradeAll = kc.IPTables.MasqueradeAll
	c.Render.NoLocalhostNodePorts = kc.IPTables.LocalhostNodePorts != nil && !*kc.IPTables.LocalhostNodePorts
	for _, s := range strings.Split(kc.ClusterCIDR, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, fmt.Errorf("iptables mode: clusterCIDR: %q is not a CIDR", s)
		}
		c.Render.ClusterCIDRs = append(c.Render.ClusterCIDRs, p.Masked())
	}
	c.NodePortAddresses = kc.NodePortAddresses
	return c, nil
}
