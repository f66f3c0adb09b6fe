package conntrack

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func staleFlow(proto v1.Protocol, nodePort int32) state.StaleFlow {
	return state.StaleFlow{
		Port: &state.ServicePort{
			Name:        state.ServicePortName{Namespace: "ns", Name: "dns", Protocol: proto},
			Protocol:    proto,
			ClusterIPs:  []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00::10")},
			ExternalIPs: []netip.Addr{netip.MustParseAddr("192.0.2.7")},
			Port:        53,
			NodePort:    nodePort,
		},
		Endpoint: state.Endpoint{IP: netip.MustParseAddr("10.244.1.2"), Port: 5353},
	}
}

func TestFiltersForCoversEveryServiceAddressOfTheEndpointFamily(t *testing.T) {
	got := FiltersFor([]state.StaleFlow{staleFlow(v1.ProtocolUDP, 30053)})
	ep := netip.MustParseAddrPort("10.244.1.2:5353")
	want := []Filter{
		{Protocol: 17, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53, Endpoint: ep},
		{Protocol: 17, OrigDst: netip.MustParseAddr("192.0.2.7"), OrigDstPort: 53, Endpoint: ep},
		{Protocol: 17, OrigDstPort: 30053, Endpoint: ep},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("filter %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestFiltersForSkipsTCP(t *testing.T) {
	if got := FiltersFor([]state.StaleFlow{staleFlow(v1.ProtocolTCP, 30053)}); len(got) != 0 {
		t.Fatalf("TCP flows must be left alone, got %v", got)
	}
}

func TestCleanStaleReportsFailureWithFilter(t *testing.T) {
	f := &failingDeleter{}
	_, err := CleanStale(f, []state.StaleFlow{staleFlow(v1.ProtocolUDP, 0)})
	if err == nil || !strings.Contains(err.Error(), "10.96.0.10:53") {
		t.Fatalf("error should name the filter, got %v", err)
	}
	if len(f.got) != 2 {
		t.Fatalf("want 2 filters in one call, got %v", f.got)
	}
}

func TestFiltersForNewlyServedMatchAnyReplySource(t *testing.T) {
	sf := staleFlow(v1.ProtocolUDP, 30053)
	got := FiltersForNewlyServed([]*state.ServicePort{sf.Port})
	if len(got) != 4 || got[0].Endpoint.IsValid() || got[3].OrigDstPort != 30053 {
		t.Fatalf("got %v", got)
	}
	if got := FiltersForNewlyServed([]*state.ServicePort{staleFlow(v1.ProtocolTCP, 0).Port}); len(got) != 0 {
		t.Fatalf("TCP: got %v", got)
	}
}

// failingDeleter records the filters and fails (fakeconntrack.Table is the stateful
// fake; it cannot be used here without an import cycle).
type failingDeleter struct{ got []Filter }

func (d *failingDeleter) Delete(filters []Filter) (uint, error) {
	d.got = append(d.got, filters...)
	return 0, errors.New("boom")
}

func TestFilterMatches(t *testing.T) {
	vip := netip.MustParseAddrPort("10.96.0.10:53")
	ep := netip.MustParseAddrPort("10.244.1.5:5353")
	f := Filter{Protocol: 17, OrigDst: vip.Addr(), OrigDstPort: 53, Endpoint: ep}
	cases := []struct {
		name          string
		proto         uint8
		dst, replySrc netip.AddrPort
		want          bool
	}{
		{"same flow", 17, vip, ep, true},
		{"other protocol", 6, vip, ep, false},
		{"other service port", 17, netip.MustParseAddrPort("10.96.0.10:54"), ep, false},
		{"other service address", 17, netip.MustParseAddrPort("10.96.0.11:53"), ep, false},
		{"other endpoint port", 17, vip, netip.MustParseAddrPort("10.244.1.5:5354"), false},
		{"v4-mapped destination", 17, netip.MustParseAddrPort("[::ffff:10.96.0.10]:53"), ep, true},
	}
	for _, c := range cases {
		if got := f.Matches(c.proto, c.dst, c.replySrc); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
	nodePort := Filter{Protocol: 17, OrigDstPort: 30053}
	if !nodePort.Matches(17, netip.MustParseAddrPort("192.168.1.1:30053"), ep) || !nodePort.IPv4() {
		t.Error("a filter without addresses must match any destination, in the IPv4 table")
	}
}
