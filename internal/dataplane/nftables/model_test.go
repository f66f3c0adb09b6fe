package nftables

import (
	"net/netip"
	"testing"
	"unsafe"
)

// The packed element keeps every field an elemSpec can carry, for every shape the
// renderer builds, in both families, and equal specs pack to equal elements.
func TestElemPacksAndUnpacksEveryShape(t *testing.T) {
	v4, v4b := netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.244.1.7")
	v6, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00:10::7")
	// IPv4 addresses whose 16-byte form looks like IPv6 ones must stay IPv4.
	zero4 := netip.MustParseAddr("0.0.0.0")
	specs := []elemSpec{
		{set: setClusterIPs, addr: v4},
		{set: setClusterIPs, addr: v6},
		{set: setClusterIPs, addr: zero4},
		{set: setClusterIPs, addr: netip.MustParseAddr("::")},
		{set: setMasqServices, addr: v4, proto: l4TCP, port: 80},
		{set: setMasqServices, addr: v6, proto: l4SCTP, port: 65535},
		{set: setNodePortPickPorts, proto: l4UDP, port: 30080},
		{set: mapServiceIPs, addr: v4, proto: l4TCP, port: 443, verdict: "goto service-abc-ns/web/tcp/https"},
		{set: mapServiceNodePorts, proto: l4TCP, port: 30443, verdict: "drop"},
		{set: mapServiceEndpoints, addr: v4, proto: l4TCP, port: 80, slot: true, index: 7,
			to: netip.AddrPortFrom(v4b, 8080)},
		{set: mapServiceEndpoints, addr: v6, proto: l4UDP, port: 53, slot: true, index: 0,
			to: netip.AddrPortFrom(v6b, 5353)},
		{set: mapNodePortEndpoints, proto: l4TCP, port: 30080, slot: true, index: 127,
			to: netip.AddrPortFrom(v4b, 0)},
		{set: setHairpin, addr: v4b, addr2: v4b},
		{set: setHairpin, addr: v6b, addr2: v6},
		{set: setServiceCIDRs, addr: v4, addr2: netip.MustParseAddr("10.96.255.255"), interval: true},
		{set: setServiceCIDRs, addr: v6, addr2: v6, interval: true},
		{set: "select-service-x", index: 4092, verdict: "goto endpoint-x__10.244.1.7/8080"},
		{set: "select-service-x", index: 0xffffffff},
	}
	seen := map[elem]elemSpec{}
	for _, s := range specs {
		e := s.elem()
		if got := e.spec(); got != s {
			t.Errorf("%+v packed and unpacked is %+v", s, got)
		}
		if e != s.elem() {
			t.Errorf("%+v packs to two different elements", s)
		}
		if other, dup := seen[e]; dup {
			t.Errorf("%+v and %+v pack to one element", s, other)
		}
		seen[e] = s
		// identity drops the value only.
		id := e.identity().spec()
		want := s
		want.verdict, want.to = "", netip.AddrPort{}
		if id != want {
			t.Errorf("identity of %+v is %+v", s, id)
		}
	}
	if got := unsafe.Sizeof(elem{}); got > 64 {
		t.Errorf("elem is %d bytes, want at most 64", got)
	}
}

// An element has either a second address or an endpoint, never both.
func TestElemWithSecondAddressAndEndpointPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("packing an element with addr2 and to did not panic")
		}
	}()
	a := netip.MustParseAddr("10.0.0.1")
	_ = elemSpec{set: setHairpin, addr: a, addr2: a, to: netip.AddrPortFrom(a, 1)}.elem()
}
