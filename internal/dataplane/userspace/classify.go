package userspace

import (
	"fmt"
	"net/netip"
	"strings"
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
	// local is the set of the host's addresses as last read by Sync. It is
	// replaced, never changed, so that relays read it without a lock.
	local atomic.Pointer[map[netip.Addr]struct{}]
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
	if m := c.local.Load(); m != nil {
		_, ok := (*m)[a]
		return ok
	}
	return false
}

// setLocal publishes the host's addresses: its interface addresses, and ours,
// the Service addresses kproxy made local (IPv4 ones are local routes, which no
// interface lists; addrs_linux.go).
func (c *classifier) setLocal(addrs map[netip.Addr]bool, ours map[netip.Addr]int) {
	m := make(map[netip.Addr]struct{}, len(addrs)+len(ours))
	for a := range addrs {
		m[a] = struct{}{}
	}
	for a := range ours {
		m[a] = struct{}{}
	}
	c.local.Store(&m)
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
