//go:build linux

package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"os"
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
	v4 := NewProxier(c)
	if err := ipv6Usable(ctx, be); err != nil {
		// Said once, at start: IPv6 Services and endpoints are then ignored.
		o.Log().Warn("iptables mode: IPv4 only, IPv6 Services are not programmed", "backend", be, "reason", err)
		return v4, nil
	}
	c6 := ipv6Config(c, be)
	o.Log().Info("iptables mode: dual-stack (one ruleset per family)", "backend", be)
	if len(c.Render.ClusterCIDRs) > 0 && len(c6.Render.prefixes(c6.Render.ClusterCIDRs)) == 0 {
		// As kube-proxy: without a cluster CIDR of the family, traffic from
		// outside the pod network to IPv6 ClusterIPs is not masqueraded.
		o.Log().Info("clusterCIDR has no IPv6 CIDR: IPv6 ClusterIP traffic is not told apart from pod traffic")
	}
	return &dualProxier{v4: v4, v6: NewProxier(c6)}, nil
}

// ipv6Usable says why the IPv6 Proxier cannot run, nil when it can: the kernel
// has IPv6 and ip6tables of the backend can read the nat table (kube-proxy's
// "IPv6 is not supported" check).
func ipv6Usable(ctx context.Context, be Backend) error {
	if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
		return fmt.Errorf("the kernel has no IPv6: %w", err)
	}
	_, err := ExecRunner{Backend: be, IPv6: true}.Save(ctx, tableNAT)
	return err
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
