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
	f := &Fake{Err: errors.New("boom")}
	_, err := CleanStale(f, []state.StaleFlow{staleFlow(v1.ProtocolUDP, 0)})
	if err == nil || !strings.Contains(err.Error(), "10.96.0.10:53") {
		t.Fatalf("error should name the filter, got %v", err)
	}
	if len(f.Filters()) != 2 {
		t.Fatalf("want 2 filters recorded, got %v", f.Filters())
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
