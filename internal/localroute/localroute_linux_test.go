//go:build linux

package localroute

import (
	"net/netip"
	"testing"

	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestNewRouteMessage decodes the RTM_NEWROUTE body: a host-scope local route of
// protocol 107 in the local table, /32 or /128, to the address through the index,
// the same route Route describes.
func TestNewRouteMessage(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		family byte
		bits   byte
	}{
		{"10.96.0.10", unix.AF_INET, 32},
		{"::ffff:10.96.0.11", unix.AF_INET, 32},
		{"fd00::10", unix.AF_INET6, 128},
	} {
		a := netip.MustParseAddr(tc.addr)
		b, err := NewRouteMessage(7, a)
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{tc.family, tc.bits, 0, 0, unix.RT_TABLE_LOCAL, 107, unix.RT_SCOPE_HOST, unix.RTN_LOCAL}
		if string(b[:8]) != string(want) {
			t.Errorf("%s: rtmsg %v, want %v", tc.addr, b[:8], want)
		}
		ad, err := mdnetlink.NewAttributeDecoder(b[12:])
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint16]bool{}
		for ad.Next() {
			got[ad.Type()] = true
			switch ad.Type() {
			case unix.RTA_DST:
				if d, _ := netip.AddrFromSlice(ad.Bytes()); d != a.Unmap() {
					t.Errorf("%s: RTA_DST %s", tc.addr, d)
				}
			case unix.RTA_OIF:
				if v := ad.Uint32(); v != 7 {
					t.Errorf("%s: RTA_OIF %d, want 7", tc.addr, v)
				}
			case unix.RTA_TABLE:
				if v := ad.Uint32(); v != unix.RT_TABLE_LOCAL {
					t.Errorf("%s: RTA_TABLE %d", tc.addr, v)
				}
			}
		}
		if err := ad.Err(); err != nil {
			t.Fatal(err)
		}
		if !got[unix.RTA_DST] || !got[unix.RTA_OIF] || !got[unix.RTA_TABLE] {
			t.Errorf("%s: attributes %v, want RTA_DST, RTA_OIF, RTA_TABLE", tc.addr, got)
		}
		r := Route(7, a)
		if ones, bits := r.Dst.Mask.Size(); ones != int(tc.bits) || bits != int(tc.bits) || r.LinkIndex != 7 || r.Protocol != Proto || r.Type != unix.RTN_LOCAL || r.Table != unix.RT_TABLE_LOCAL {
			t.Errorf("%s: Route %+v", tc.addr, r)
		}
	}
}
