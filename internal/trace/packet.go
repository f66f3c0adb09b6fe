package trace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Packet is the first packet of the connection being traced.
type Packet struct {
	Src   netip.Addr
	Dst   netip.Addr
	DPort uint16
	// Proto is "tcp", "udp" or "sctp".
	Proto string
	// InInterface is set for traffic arriving from outside the node's own stack
	// (prerouting path); empty means a locally generated packet (output path).
	InInterface string
}

// Options are what the evaluation needs to know about the node beyond the rules.
type Options struct {
	// LocalAddrs are the node's own addresses, for `-m addrtype --dst-type LOCAL`
	// and `fib daddr type local`. Loopback addresses are always local.
	LocalAddrs []netip.Addr
	// LocalKnown says LocalAddrs is the full list (read from the node); when false
	// the trace notes that other addresses were assumed not to be local.
	LocalKnown bool
	// Recent holds the xt_recent lists (name → source addresses present), when
	// read from the kernel. Nil means unknown: a --rcheck is assumed not to match,
	// which is what a client not seen before gets.
	Recent map[string][]netip.Addr
	// IPSets are the node's ipsets (ipvs mode's rules match them); nil means
	// unknown, and -m set matches are then noted and assumed not to match.
	IPSets map[string]*IPSet
}

// ParseDestination parses "DST:PORT[/tcp|udp|sctp]" (IPv6 as "[addr]:port").
func ParseDestination(s string) (netip.Addr, uint16, string, error) {
	proto := "tcp"
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		proto = strings.ToLower(s[i+1:])
		s = s[:i]
		switch proto {
		case "tcp", "udp", "sctp":
		default:
			return netip.Addr{}, 0, "", fmt.Errorf("--to: protocol %q: want tcp, udp or sctp", proto)
		}
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, "", fmt.Errorf("--to %q: want ADDRESS:PORT[/PROTOCOL]: %v", s, err)
	}
	if ap.Port() == 0 {
		return netip.Addr{}, 0, "", fmt.Errorf("--to %q: port 0 is not a Service port", s)
	}
	return ap.Addr().Unmap(), ap.Port(), proto, nil
}

func (p Packet) path() string {
	if p.InInterface != "" {
		return "prerouting"
	}
	return "output"
}

func protoNumber(p string) string {
	switch strings.ToLower(p) {
	case "tcp", "6":
		return "tcp"
	case "udp", "17":
		return "udp"
	case "sctp", "132":
		return "sctp"
	case "icmp", "1":
		return "icmp"
	}
	return strings.ToLower(p)
}

// portNumber accepts a number or one of the service names nft and iptables print.
func portNumber(s string) (uint16, bool) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), true
	}
	names := map[string]uint16{"http": 80, "https": 443, "ssh": 22, "domain": 53,
		"dns": 53, "ntp": 123, "smtp": 25, "http-alt": 8080, "webcache": 8080}
	n, ok := names[s]
	return n, ok
}

// isLocal says whether a is one of the node's addresses; note is set when the
// answer is an assumption.
func (o *Options) isLocal(a netip.Addr) (bool, string) {
	if a.IsLoopback() {
		return true, ""
	}
	for _, l := range o.LocalAddrs {
		if l == a {
			return true, ""
		}
	}
	if o.LocalKnown {
		return false, ""
	}
	return false, fmt.Sprintf("%s is assumed not to be a node address (give --node-ip to say otherwise)", a)
}

func (o *Options) inRecent(list string, src netip.Addr) (known, present bool) {
	if o.Recent == nil {
		return false, false
	}
	for _, a := range o.Recent[list] {
		if a == src {
			return true, true
		}
	}
	return true, false
}
