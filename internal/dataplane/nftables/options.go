package nftables

import (
	"fmt"
	"net/netip"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/nodeaddr"
)

// defaultMasqueradeBit is kube-proxy's default mark bit (0x4000).
const defaultMasqueradeBit = 14

// nodeConfig is what the config file says for every family; the NodePort addresses
// are resolved per sync (they depend on the node's interfaces).
type nodeConfig struct {
	masqMark          uint32
	masqueradeAll     bool
	clusterCIDRs      []netip.Prefix
	nodePortAddresses []string
}

func configFrom(o dataplane.Options) (nodeConfig, error) {
	nc := nodeConfig{masqMark: 1 << defaultMasqueradeBit}
	c := o.Config
	if c == nil {
		return nc, nil
	}
	if b := c.NFTables.MasqueradeBit; b != nil {
		if *b < 0 || *b > 31 {
			return nc, fmt.Errorf("nftables.masqueradeBit: %d is not in [0, 31]", *b)
		}
		nc.masqMark = 1 << uint(*b)
	}
	nc.masqueradeAll = c.NFTables.MasqueradeAll
	for i, s := range strings.Split(c.ClusterCIDR, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nc, fmt.Errorf("clusterCIDR[%d]: %q is not a CIDR", i, s)
		}
		nc.clusterCIDRs = append(nc.clusterCIDRs, p.Masked())
	}
	nc.nodePortAddresses = c.NodePortAddresses
	if len(nc.nodePortAddresses) == 0 {
		// kube-proxy's nftables default (k8s.io/kube-proxy v0.37 types.go); iptables
		// and ipvs default to all addresses.
		nc.nodePortAddresses = nodeaddr.DefaultFor(ModeName)
	}
	return nc, nil
}

// forFamily narrows the node config to one family's render options.
func (nc nodeConfig) forFamily(f family, nodePortIPs []netip.Addr) renderOptions {
	o := renderOptions{fam: f, masqMark: nc.masqMark, masqueradeAll: nc.masqueradeAll,
		defaultScheduler: schedRandom}
	for _, p := range nc.clusterCIDRs {
		if f.matches(p.Addr()) {
			o.clusterCIDRs = append(o.clusterCIDRs, p)
		}
	}
	if nodePortIPs != nil {
		o.nodePortIPs = []netip.Addr{}
		for _, a := range nodePortIPs {
			// Loopback is served by the localhost relay, never DNATed (see renderNode).
			if f.matches(a) && !a.IsLoopback() {
				o.nodePortIPs = append(o.nodePortIPs, a)
			}
		}
	}
	return o
}

// key identifies the options whose change needs a full sync; the ServiceCIDRs are
// left out (their elements are diffed like any other).
func (o renderOptions) key() string {
	o.serviceCIDRs = nil
	return fmt.Sprintf("%+v", o)
}

// families resolves the render options of both tables for one snapshot.
func (nc nodeConfig) families(nodePortIPs []netip.Addr, serviceCIDRs []netip.Prefix) []renderOptions {
	out := []renderOptions{nc.forFamily(familyIPv4, nodePortIPs), nc.forFamily(familyIPv6, nodePortIPs)}
	for i := range out {
		for _, p := range serviceCIDRs {
			if out[i].fam.matches(p.Addr()) {
				out[i].serviceCIDRs = append(out[i].serviceCIDRs, p)
			}
		}
	}
	return out
}
