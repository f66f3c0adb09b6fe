package fakeipt

import (
	"fmt"
	"net/netip"
	"strings"
)

// family is what a strict Runner accepts: 0 any address (New), 4 or 6.
type family int

// NewIPv4 returns a Runner that, like iptables-restore, fails a restore naming an
// IPv6 address (in -s, -d or --to-destination) or an icmp6 reject.
func NewIPv4() *Runner { r := New(); r.family = 4; return r }

// NewIPv6 returns a Runner that, like ip6tables-restore, fails a restore naming an
// IPv4 address or an IPv4 icmp reject.
func NewIPv6() *Runner { r := New(); r.family = 6; return r }

// check returns the error the real tool of this family gives for args, nil when
// the family is not enforced.
func (f family) check(args []string) error {
	if f == 0 {
		return nil
	}
	for i := 0; i+1 < len(args); i++ {
		v := args[i+1]
		switch args[i] {
		case "-s", "-d", "--source", "--destination":
			if err := f.checkAddr(v); err != nil {
				return err
			}
		case "--to-destination":
			host := v
			if ap, err := netip.ParseAddrPort(v); err == nil {
				host = ap.Addr().String()
			}
			if err := f.checkAddr(host); err != nil {
				return fmt.Errorf("bad IP address %q", v)
			}
		case "--reject-with":
			if strings.HasPrefix(v, "icmp6-") != (f == 6) {
				return fmt.Errorf("unknown reject type %q", v)
			}
		}
	}
	return nil
}

func (f family) checkAddr(v string) error {
	host, bits, hasBits := strings.Cut(v, "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("host/network `%s' not found", host)
	}
	if a.Is4() != (f == 4) {
		if hasBits && f == 4 {
			return fmt.Errorf("invalid mask `%s' specified", bits)
		}
		return fmt.Errorf("host/network `%s' not found", host)
	}
	return nil
}
