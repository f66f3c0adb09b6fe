package dataplane

import (
	"fmt"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/healthcheck"
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
	co := CoreOptions{
		Health: healthcheck.New(healthcheck.Options{Logger: o.Log(), Healthy: o.ProxyHealthy}),
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
	}
	return NewCore(p, co), nil
}
