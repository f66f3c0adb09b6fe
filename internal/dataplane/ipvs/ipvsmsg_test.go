//go:build linux

package ipvs

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
)

// attrs decodes one level of netlink attributes into type -> data (nested
// attributes keep their data; the NLA_F_NESTED bit is dropped from the type).
func attrs(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	list, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatalf("attributes: %v", err)
	}
	out := map[uint16][]byte{}
	for _, a := range list {
		typ := a.Type &^ netlink.Nested
		if _, dup := out[typ]; dup {
			t.Fatalf("attribute %d twice", typ)
		}
		out[typ] = a.Data
	}
	return out
}

func u16(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func wantAttrs(t *testing.T, what string, got map[uint16][]byte, want map[uint16][]byte) {
	t.Helper()
	for typ, w := range want {
		if g, ok := got[typ]; !ok {
			t.Errorf("%s: attribute %d missing", what, typ)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: attribute %d = % x, want % x", what, typ, g, w)
		}
	}
	for typ := range got {
		if _, ok := want[typ]; !ok {
			t.Errorf("%s: unexpected attribute %d = % x", what, typ, got[typ])
		}
	}
}

// TestNewServiceRequestLayout checks IPVS_CMD_NEW_SERVICE against the layout of
// include/uapi/linux/ip_vs.h: the generic netlink header, then IPVS_CMD_ATTR_SERVICE
// holding family, protocol, address (4 or 16 bytes), port in network order,
// NUL-terminated scheduler, struct ip_vs_flags, timeout and netmask.
func TestNewServiceRequestLayout(t *testing.T) {
	for _, tc := range []struct {
		vs      virtualServer
		addr    []byte
		af      uint16
		netmask uint32
	}{
		{virtualServer{Key: vsKey{netip.MustParseAddr("10.96.0.10"), 53, protoUDP}, Scheduler: "rr"},
			[]byte{10, 96, 0, 10}, 2, 0xffffffff},
		{virtualServer{Key: vsKey{netip.MustParseAddr("fd00::a"), 443, protoTCP}, Scheduler: "mh", Flags: flagPersistent | flagSched1, Timeout: 10800},
			netip.MustParseAddr("fd00::a").AsSlice(), 10, 128},
	} {
		r, err := newServiceRequest(0x1234, toService(&tc.vs))
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != 0x1234 {
			t.Errorf("%s: message type %#x, want the family id", tc.vs.Key, r.Type)
		}
		if !bytes.Equal(r.Data[:4], []byte{ipvsCmdNewService, 1, 0, 0}) {
			t.Errorf("%s: genl header % x, want cmd 1 version 1", tc.vs.Key, r.Data[:4])
		}
		top := attrs(t, r.Data[4:])
		if len(top) != 1 || top[ipvsCmdAttrService] == nil {
			t.Fatalf("%s: want only IPVS_CMD_ATTR_SERVICE, got %v", tc.vs.Key, top)
		}
		port := binary.BigEndian.AppendUint16(nil, tc.vs.Key.Port)
		flags := append(u32(tc.vs.Flags), 0xff, 0xff, 0xff, 0xff)
		wantAttrs(t, tc.vs.Key.String(), attrs(t, top[ipvsCmdAttrService]), map[uint16][]byte{
			1: u16(tc.af),                         // AF
			2: u16(tc.vs.Key.Proto),               // PROTOCOL
			3: tc.addr,                            // ADDR
			4: port,                               // PORT, big endian
			6: append([]byte(tc.vs.Scheduler), 0), // SCHED_NAME
			7: flags,                              // FLAGS {flags, mask}
			8: u32(tc.vs.Timeout),                 // TIMEOUT
			9: u32(tc.netmask),                    // NETMASK
		})
	}
}

// TestNewDestRequestLayout checks IPVS_CMD_NEW_DEST: the virtual server's key
// attributes, then IPVS_CMD_ATTR_DEST with address, port in network order,
// forwarding method (masquerade), weight, thresholds and family.
func TestNewDestRequestLayout(t *testing.T) {
	key := vsKey{netip.MustParseAddr("10.96.0.1"), 80, protoTCP}
	r, err := newDestRequest(0x22, keyOnlyService(key), toDestination(netip.MustParseAddrPort("10.244.1.7:8080"), 3))
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != 0x22 || !bytes.Equal(r.Data[:4], []byte{ipvsCmdNewDest, 1, 0, 0}) {
		t.Fatalf("type %#x genl header % x, want 0x22 and cmd 5 version 1", r.Type, r.Data[:4])
	}
	top := attrs(t, r.Data[4:])
	if len(top) != 2 {
		t.Fatalf("want IPVS_CMD_ATTR_SERVICE and _DEST, got %v", top)
	}
	wantAttrs(t, "service key", attrs(t, top[ipvsCmdAttrService]), map[uint16][]byte{
		1: u16(2), 2: u16(protoTCP), 3: {10, 96, 0, 1}, 4: {0, 80},
	})
	wantAttrs(t, "dest", attrs(t, top[ipvsCmdAttrDest]), map[uint16][]byte{
		1:  {10, 244, 1, 7}, // ADDR
		2:  {0x1f, 0x90},    // PORT 8080, big endian
		3:  u32(0),          // FWD_METHOD masquerade
		4:  u32(3),          // WEIGHT
		5:  u32(0),          // U_THRESH
		6:  u32(0),          // L_THRESH
		11: u16(2),          // ADDR_FAMILY
	})
}

func TestFamilyIDFromControllerAnswer(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.String(ctrlAttrFamilyName, "IPVS")
	ae.Uint16(ctrlAttrFamilyID, 0x1d)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	id, err := familyID([][]byte{append([]byte{1, 2, 0, 0}, b...)})
	if err != nil || id != 0x1d {
		t.Fatalf("familyID = %#x, %v; want 0x1d", id, err)
	}
	if _, err := familyID([][]byte{{1, 2, 0, 0}}); err == nil {
		t.Fatal("an answer without CTRL_ATTR_FAMILY_ID must fail")
	}
}
