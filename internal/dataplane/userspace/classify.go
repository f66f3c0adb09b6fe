package userspace

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// classifier tells clients in the cluster from outside ones, for the
// short-circuit of externalTrafficPolicy Local (feConfig.inCluster). In the
// cluster are what kube-proxy's rules send to the cluster-wide endpoints: pods
// (a source in clusterCIDR, its detectLocalMode ClusterCIDR) and the node itself
// (a source that is one of the node's own addresses, iptables' "addrtype
// --src-type LOCAL"; loopback included).
type classifier struct {
	clusterCIDRs []netip.Prefix
	// loopback counts every loopback source as the node's (always, but in
	// tests, whose clients are all on loopback).
	loopback bool
	// host is the set of the host's interface addresses as last read by Sync. It
	// is replaced, never changed, so that relays read it without a lock.
	host atomic.Pointer[map[netip.Addr]struct{}]
	// ours holds the Service addresses kproxy made local (IPv4 ones are local
	// routes, which no interface lists; addrs_linux.go). It changes by one address
	// at a time, so that a Sync's cost does not grow with the number of Services.
	oursMu sync.RWMutex
	ours   map[netip.Addr]struct{}
}

// inCluster reports whether a client at a is in the cluster. It allocates
// nothing: it runs once per new connection of such frontends.
func (c *classifier) inCluster(a netip.Addr) bool {
	if c.loopback && a.IsLoopback() {
		return true
	}
	for _, p := range c.clusterCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	if m := c.host.Load(); m != nil {
		if _, ok := (*m)[a]; ok {
			return true
		}
	}
	c.oursMu.RLock()
	_, ok := c.ours[a]
	c.oursMu.RUnlock()
	return ok
}

// setHost publishes the host's interface addresses.
func (c *classifier) setHost(addrs map[netip.Addr]bool) {
	m := make(map[netip.Addr]struct{}, len(addrs))
	for a := range addrs {
		m[a] = struct{}{}
	}
	c.host.Store(&m)
}

// addOurs and delOurs record a Service address kproxy made local or released.
func (c *classifier) addOurs(a netip.Addr) {
	c.oursMu.Lock()
	if c.ours == nil {
		c.ours = make(map[netip.Addr]struct{})
	}
	c.ours[a] = struct{}{}
	c.oursMu.Unlock()
}

func (c *classifier) delOurs(a netip.Addr) {
	c.oursMu.Lock()
	delete(c.ours, a)
	c.oursMu.Unlock()
}

// parseClusterCIDRs reads the config's clusterCIDR (a comma-separated list, as
// kube-proxy's).
func parseClusterCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("clusterCIDR[%d]: %q is not a CIDR", i, f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
