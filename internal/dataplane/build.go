package dataplane

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/healthcheck"
	"kproxy.dev/kproxy/internal/nodeaddr"
)

// newDeleter builds the kernel's conntrack deleter; nil where there is none (not
// Linux).
var newDeleter func() conntrack.Deleter

// Build makes the named mode's Programmer and wraps it in the core, with the
// health-check node ports and (for kernel NAT modes) conntrack cleanup.
func Build(m Mode, o Options) (*Core, error) {
	p, err := m.New(o)
	if err != nil {
		return nil, err
	}
	hc := healthcheck.Options{Logger: o.Log(), Healthy: o.ProxyHealthy,
		DefaultNodePortAddresses: nodeaddr.DefaultFor(m.Name), LocalAddresses: nodeaddr.LocalAddresses}
	if o.Config != nil {
		// Health-check ports listen where NodePorts are served, as kube-proxy's.
		hc.NodePortAddresses = o.Config.NodePortAddresses
	}
	co := CoreOptions{
		Health: healthcheck.New(hc),
		Logger: o.Log(),
	}
	if o.Config != nil {
		co.CheckInterval, _ = config.SyncPeriods(o.Config)
	}
	if m.KernelNAT {
		if newDeleter == nil {
			return nil, fmt.Errorf("proxy mode %s needs Linux", m.Name)
		}
		co.Conntrack = newDeleter()
		co.Reconciler = &conntrack.Reconciler{Lister: conntrack.NewLister(), Deleter: co.Conntrack,
			Metrics: conntrack.NewReconcilerMetrics(o.Registerer), IsNodeAddr: localAddrCache(), Log: o.Log()}
	}
	return NewCore(p, co), nil
}

// localAddrCache reports whether an address is one of the node's, reading the
// interfaces at most every 30s (the reconciler asks once per NodePort flow).
func localAddrCache() func(netip.Addr) bool {
	var mu sync.Mutex
	var at time.Time
	var set map[netip.Addr]bool
	return func(a netip.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		if set == nil || time.Since(at) > 30*time.Second {
			addrs, err := nodeaddr.LocalAddresses()
			if err != nil && set != nil {
				return set[a.Unmap()]
			}
			set, at = make(map[netip.Addr]bool, len(addrs)), time.Now()
			for _, x := range addrs {
				set[x.Unmap()] = true
			}
		}
		return set[a.Unmap()]
	}
}
