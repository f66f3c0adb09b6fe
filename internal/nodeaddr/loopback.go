package nodeaddr

import (
	"net/netip"

	"kproxy.dev/kproxy/internal/config"
)

var ipv4Loopback = netip.MustParsePrefix("127.0.0.0/8")

// ContainsIPv4Loopback reports whether the list (dflt when empty; nil dflt means
// "all") serves NodePorts on IPv4 loopback: "all", "localhost", or a CIDR that
// overlaps 127.0.0.0/8 (so 0.0.0.0/0 counts). Only then does the iptables mode need
// net.ipv4.conf.all.route_localnet=1. kube-proxy tests whether a CIDR contains
// 127.0.0.0 exactly; overlapping also covers 127.0.0.1/32, which kube-proxy would
// render without making it work.
func ContainsIPv4Loopback(list, dflt []string) (bool, error) {
	f, err := parseWithDefault(list, dflt)
	if err != nil {
		return false, err
	}
	return f.All || f.Localhost || f.overlaps(ipv4Loopback), nil
}

// NamesLoopback reports whether the list explicitly names loopback: the
// "localhost" keyword or a CIDR inside 127.0.0.0/8 or ::1/128. "all" and wider CIDRs
// do not count. This is the condition of kube-proxy 1.37's localhost NodePorts in
// nftables mode (KEP-6032).
func NamesLoopback(list []string) (bool, error) {
	f, err := Parse(list)
	if err != nil {
		return false, err
	}
	if f.Localhost {
		return true, nil
	}
	for _, p := range f.CIDRs {
		if p.Addr().Unmap().IsLoopback() {
			return true, nil
		}
	}
	return false, nil
}

func parseWithDefault(list, dflt []string) (Filter, error) {
	if len(list) == 0 {
		list = dflt
	}
	if len(list) == 0 {
		list = []string{KeywordAll}
	}
	return Parse(list)
}

func (f Filter) overlaps(p netip.Prefix) bool {
	for _, c := range f.CIDRs {
		if c.Overlaps(p) {
			return true
		}
	}
	return false
}

// DefaultFor is the nodePortAddresses a mode uses when the config leaves it empty,
// as kube-proxy 1.37: "primary" in nftables mode (and the ebpf mode, whose
// NodePorts are the nftables mode's), every address (nil) otherwise.
func DefaultFor(mode string) []string {
	if config.SettingsMode(mode) == config.ModeNFTables {
		return []string{KeywordPrimary}
	}
	return nil
}
