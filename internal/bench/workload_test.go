package bench

import (
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

func TestWorkloadInitialSnapshot(t *testing.T) {
	w, err := NewWorkload(WorkloadOptions{Services: 300, Endpoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	snap, cs := w.Initial()
	if snap.Len() != 300 || len(cs.Ports) != 300 {
		t.Fatalf("got %d services, %d changed; want 300, 300", snap.Len(), len(cs.Ports))
	}
	names := snap.SortedNames()
	if names[0] != PortName(0) || names[299] != PortName(299) {
		t.Errorf("sort order: first %v last %v; want Service 0 first and 299 last", names[0], names[299])
	}
	sp := snap.Service(PortName(256))
	if sp == nil || sp.ClusterIPs[0] != netip.MustParseAddr("10.96.1.1") || sp.Port != 80 || sp.Protocol != "TCP" {
		t.Fatalf("Service 256 = %+v, want 10.96.1.1:80/TCP", sp)
	}
	eps := snap.EndpointsOf(PortName(1))
	want := []string{"10.128.0.4:8080", "10.128.0.5:8080", "10.128.0.6:8080"}
	if len(eps) != 3 {
		t.Fatalf("endpoints of Service 1: %v, want %v", eps, want)
	}
	for i, e := range eps {
		if e.String() != want[i] || !e.Ready || e.IsLocal {
			t.Errorf("endpoint %d = %v ready=%v local=%v, want %s ready, remote", i, e, e.Ready, e.IsLocal, want[i])
		}
	}
	c := snap.Categorize(PortName(1))
	if len(c.Cluster) != 3 {
		t.Errorf("categorised cluster endpoints: %d, want 3", len(c.Cluster))
	}
}

func TestWorkloadChangeIsOneServiceAddedAndOneEndpointMoved(t *testing.T) {
	w, err := NewWorkload(WorkloadOptions{Services: 10, Endpoints: 2})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := w.Initial()
	snap, cs := w.Change()
	if snap.Len() != 11 {
		t.Fatalf("after change: %d Services, want 11", snap.Len())
	}
	want := map[state.ServicePortName]bool{PortName(10): true, PortName(0): true}
	if len(cs.Ports) != 2 || !cs.Changed(PortName(10)) || !cs.Changed(PortName(0)) {
		t.Fatalf("changed ports %v, want %v", cs.Ports, want)
	}
	ips := func(s *state.Snapshot) map[string]bool {
		m := map[string]bool{}
		for _, e := range s.EndpointsOf(PortName(0)) {
			m[e.String()] = true
		}
		return m
	}
	old, cur := ips(before), ips(snap)
	kept := 0
	for k := range cur {
		if old[k] {
			kept++
		}
	}
	if len(cur) != 2 || kept != 1 {
		t.Errorf("Service 0 endpoints %v -> %v: want exactly one of two moved", old, cur)
	}
	_, cs2 := w.Change()
	if !cs2.Changed(PortName(11)) || !cs2.Changed(PortName(1)) || len(cs2.Ports) != 2 {
		t.Errorf("second change: %v, want Services 11 and 1", cs2.Ports)
	}
}

func TestWorkloadRejectsBadSizes(t *testing.T) {
	for _, o := range []WorkloadOptions{{Services: 0, Endpoints: 3}, {Services: 10, Endpoints: 0}, {Services: 100000, Endpoints: 30}} {
		if _, err := NewWorkload(o); err == nil {
			t.Errorf("NewWorkload(%+v): no error", o)
		}
	}
}

func TestServiceAddrCarries(t *testing.T) {
	if got := ServiceAddr(9999).String(); got != "10.96.39.16:80" {
		t.Errorf("ServiceAddr(9999) = %s, want 10.96.39.16:80", got)
	}
	if got := EndpointAddr(29999).String(); got != "10.128.117.48" {
		t.Errorf("EndpointAddr(29999) = %s", got)
	}
}

// TestWorkloadScale: 100,000 Services x 5 endpoints fit the address plan, every
// endpoint address is distinct and inside EndpointCIDR, and a Service with more
// than SliceSize endpoints is spread over several slices.
func TestWorkloadScale(t *testing.T) {
	if _, err := NewWorkload(WorkloadOptions{Services: 1, Endpoints: 1}); err != nil {
		t.Fatal(err)
	}
	last := EndpointAddr((100000+16)*5 - 1)
	if !EndpointCIDR.Contains(last) || EndpointCIDR.Overlaps(ServiceCIDR) {
		t.Fatalf("endpoint %s of 100,000 x 5 outside %s, or %s overlaps %s", last, EndpointCIDR, EndpointCIDR, ServiceCIDR)
	}
	if (100000+16)*5 > maxEndpoints {
		t.Fatalf("100,000 x 5 endpoints exceed maxEndpoints %d", maxEndpoints)
	}
	w, err := NewWorkload(WorkloadOptions{Services: 2, Endpoints: 250})
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := w.Initial()
	eps := snap.EndpointsOf(PortName(1))
	seen := map[string]bool{}
	for _, e := range eps {
		seen[e.String()] = true
	}
	if len(eps) != 250 || len(seen) != 250 {
		t.Fatalf("Service 1 has %d endpoints (%d distinct) over its slices, want 250", len(eps), len(seen))
	}
	snap, cs := w.Change()
	if _, ok := cs.Ports[PortName(0)]; !ok || len(snap.EndpointsOf(PortName(0))) != 250 {
		t.Fatalf("moving one endpoint of a 3-slice Service: changed %v, %d endpoints", cs.Ports, len(snap.EndpointsOf(PortName(0))))
	}
}
