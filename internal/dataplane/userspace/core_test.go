package userspace

import (
	"sync"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/healthcheck"
)

var (
	coresMu sync.Mutex
	cores   = map[*Proxier]*dataplane.Core{}
)

// coreFor returns the proxier core that drives p in tests, as the daemon's does,
// with a health-check server for eTP=Local Services.
func coreFor(p *Proxier) *dataplane.Core {
	coresMu.Lock()
	defer coresMu.Unlock()
	c := cores[p]
	if c == nil {
		c = dataplane.NewCore(p, dataplane.CoreOptions{Health: healthcheck.New(healthcheck.Options{})})
		cores[p] = c
	}
	return c
}
