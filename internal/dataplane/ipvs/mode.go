//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	mobyipvs "github.com/moby/ipvs"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
)

func init() {
	dataplane.Register(dataplane.Mode{Name: "ipvs", New: New, Cleanup: CleanupMode, KernelNAT: true})
	dataplane.RegisterKernelLister("ipvs", ListKernel)
}

// New checks the kernel, applies the IPVS sysctls and timeouts, and returns the
// dataplane. A kernel without IPVS, the configured scheduler, dummy links or ipset
// gets an error naming the modules and the modprobe lines that fix it.
func New(o dataplane.Options) (dataplane.Programmer, error) {
	po, err := optionsFromConfig(o)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	h, err := preflight(ctx, []string{po.Scheduler})
	if err != nil {
		return nil, err
	}
	batch, err := newNetlinkBatch()
	if err != nil {
		return nil, fmt.Errorf("ipvs: %w", err)
	}
	k := Kernel{
		IPVS: h, Batch: batch, Links: netlinkLinks{}, IPSet: execIPSet{}, Iptables: execIptables{}, Sysctl: procSysctl{},
		LocalAddrs: nodeaddr.LocalAddresses,
	}
	strictARP := o.Config != nil && o.Config.IPVS.StrictARP
	if err := setSysctls(k.Sysctl, strictARP); err != nil {
		return nil, err
	}
	if o.Config != nil {
		if err := setTimeouts(k.IPVS, o.Config.IPVS); err != nil {
			return nil, err
		}
	}
	return newProxier(k, po), nil
}

// optionsFromConfig reads and validates the config fields IPVS mode uses; errors
// name the field.
func optionsFromConfig(o dataplane.Options) (proxierOptions, error) {
	po := proxierOptions{Scheduler: "rr", Log: o.Log()}
	c := o.Config
	if c == nil {
		return po, nil
	}
	if c.IPVS.Scheduler != "" {
		po.Scheduler = c.IPVS.Scheduler
	}
	if !knownScheduler(po.Scheduler) {
		return po, fmt.Errorf("ipvs.scheduler: unknown IPVS scheduler %q (known: %s)", po.Scheduler, strings.Join(KernelSchedulers, ", "))
	}
	po.MasqueradeAll = c.IPTables.MasqueradeAll
	if c.IPTables.MasqueradeBit != nil {
		po.MasqueradeBit = int(*c.IPTables.MasqueradeBit)
		if po.MasqueradeBit < 0 || po.MasqueradeBit > 31 {
			return po, fmt.Errorf("iptables.masqueradeBit: %d not in 0..31", po.MasqueradeBit)
		}
	}
	for i, s := range splitList(c.ClusterCIDR) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return po, fmt.Errorf("clusterCIDR[%d]: %q: %v", i, s, err)
		}
		po.ClusterCIDRs = append(po.ClusterCIDRs, p.Masked())
	}
	for i, s := range c.IPVS.ExcludeCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return po, fmt.Errorf("ipvs.excludeCIDRs[%d]: %q: %v", i, s, err)
		}
		po.ExcludeCIDRs = append(po.ExcludeCIDRs, p.Masked())
	}
	if _, err := nodeaddr.Parse(c.NodePortAddresses); err != nil {
		return po, err
	}
	po.NodePortAddresses = c.NodePortAddresses
	return po, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// setTimeouts applies ipvs.tcpTimeout, tcpFinTimeout and udpTimeout like
// `ipvsadm --set`: a zero value keeps the kernel's current one.
func setTimeouts(h IPVS, c kpconfig.KubeProxyIPVSConfiguration) error {
	if c.TCPTimeout.Duration == 0 && c.TCPFinTimeout.Duration == 0 && c.UDPTimeout.Duration == 0 {
		return nil
	}
	cur, err := h.GetConfig()
	if err != nil {
		return fmt.Errorf("read IPVS timeouts: %w", err)
	}
	next := *cur
	for _, f := range []struct {
		dst *time.Duration
		val time.Duration
	}{{&next.TimeoutTCP, c.TCPTimeout.Duration}, {&next.TimeoutTCPFin, c.TCPFinTimeout.Duration}, {&next.TimeoutUDP, c.UDPTimeout.Duration}} {
		if f.val > 0 {
			*f.dst = f.val
		}
	}
	if next == *cur {
		return nil
	}
	if err := h.SetConfig(&next); err != nil {
		return fmt.Errorf("set IPVS timeouts (ipvs.tcpTimeout, tcpFinTimeout, udpTimeout): %w", err)
	}
	return nil
}

var _ IPVS = (*mobyipvs.Handle)(nil)

var (
	_ dataplane.Bencher    = (*Proxier)(nil)
	_ dataplane.Programmer = (*Proxier)(nil)
	_ dataplane.Lister     = (*Proxier)(nil)
)
