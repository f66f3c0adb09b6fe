package ebpf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func port(ns, name string) state.ServicePortName {
	return state.ServicePortName{Namespace: ns, Name: name, Port: "p", Protocol: v1.ProtocolTCP}
}

func ep(s string, w int) state.Endpoint {
	ap := netip.MustParseAddrPort(s)
	return state.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true, Weight: w}
}

func snap1(sp *state.ServicePort, eps ...state.Endpoint) *state.Snapshot {
	return &state.Snapshot{
		ServiceMap:  map[state.ServicePortName]*state.ServicePort{sp.Name: sp},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{sp.Name: eps},
	}
}

func svc(name state.ServicePortName, ips ...string) *state.ServicePort {
	sp := &state.ServicePort{Name: name, Type: v1.ServiceTypeClusterIP, Protocol: name.Protocol, Port: 80}
	for _, ip := range ips {
		sp.ClusterIPs = append(sp.ClusterIPs, netip.MustParseAddr(ip))
	}
	return sp
}

func slotAddrs(f *Frontend) map[string]int {
	out := map[string]int{}
	for _, s := range f.Slots {
		out[s.addrPort().String()]++
	}
	return out
}

func TestRenderDualStackSplitsFamilies(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1", "fd00::1")
	d, errs := Render(snap1(sp, ep("10.0.0.1:8080", 1), ep("[fd00:1::1]:8080", 1), ep("10.0.0.2:8080", 1)), RenderOptions{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	v4 := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]
	v6 := d[newSvcKey(netip.MustParseAddr("fd00::1"), 80, protoTCP)]
	if v4 == nil || v6 == nil {
		t.Fatalf("frontends: %v", d)
	}
	if got := slotAddrs(v4); len(got) != 2 || got["10.0.0.1:8080"] != 1 {
		t.Errorf("IPv4 slots %v", got)
	}
	if got := slotAddrs(v6); len(got) != 1 || got["[fd00:1::1]:8080"] != 1 {
		t.Errorf("IPv6 slots %v", got)
	}
	if v4.Key.Addr[10] != 0xff || v4.Key.Addr[11] != 0xff {
		t.Errorf("IPv4 key is not IPv4-mapped: %v", v4.Key.Addr)
	}
	if v4.Key.Port != [2]byte{0, 80} {
		t.Errorf("port not in network order: %v", v4.Key.Port)
	}
}

func TestRenderWeightsAndDrain(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	d, _ := Render(snap1(sp, ep("10.0.0.1:80", 4), ep("10.0.0.2:80", 2), ep("10.0.0.3:80", 0)), RenderOptions{})
	f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]
	got := slotAddrs(f)
	if got["10.0.0.1:80"] != 2 || got["10.0.0.2:80"] != 1 || got["10.0.0.3:80"] != 0 {
		t.Errorf("weighted slots %v, want 2:1 and none for weight 0", got)
	}
	if len(f.Endpoints) != 3 {
		t.Errorf("endpoints %v: a draining endpoint is still one (for socket destroy)", f.Endpoints)
	}
}

func TestRenderMaglevTable(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	sp.Scheduler, sp.SchedulerFlags = "mh", []string{"mh-port"}
	d, _ := Render(snap1(sp, ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 1), ep("10.0.0.3:80", 1)), RenderOptions{})
	f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]
	if f.Sched != schedMaglev || f.Flags != flagHashSocket || len(f.Slots) != MaglevTableSize {
		t.Fatalf("sched %d flags %d slots %d", f.Sched, f.Flags, len(f.Slots))
	}
	for a, n := range slotAddrs(f) {
		if n < MaglevTableSize/3-20 || n > MaglevTableSize/3+20 {
			t.Errorf("backend %s owns %d of %d slots, want about a third", a, n, MaglevTableSize)
		}
	}
	// Removing one backend keeps the others' slots (consistent hashing).
	d2, _ := Render(snap1(sp, ep("10.0.0.1:80", 1), ep("10.0.0.2:80", 1)), RenderOptions{})
	f2 := d2[f.Key]
	moved := 0
	for i := range f.Slots {
		if f.Slots[i].addrPort().String() != "10.0.0.3:80" && f.Slots[i] != f2.Slots[i] {
			moved++
		}
	}
	if moved > MaglevTableSize/20 {
		t.Errorf("%d slots of surviving backends moved", moved)
	}
}

func TestRenderSchedulerErrorNamesServiceAndField(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	sp.Scheduler = "lblc"
	d, errs := Render(snap1(sp, ep("10.0.0.1:80", 1)), RenderOptions{})
	var pe *PortError
	if len(errs) != 1 || !errors.As(errs[0], &pe) || !strings.Contains(errs[0].Error(), "ns/web") || !strings.Contains(errs[0].Error(), "scheduler") {
		t.Fatalf("errors %v, want one naming ns/web and the scheduler field", errs)
	}
	if len(d) != 0 {
		t.Errorf("rendered %v for a bad Service", d)
	}
}

func TestRenderInternalTrafficPolicyLocal(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	sp.InternalPolicyLocal = true
	local := ep("10.0.0.1:80", 1)
	local.IsLocal = true
	d, _ := Render(snap1(sp, local, ep("10.0.0.2:80", 1)), RenderOptions{})
	f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]
	if got := slotAddrs(f); len(got) != 1 || got["10.0.0.1:80"] != 1 {
		t.Errorf("iTP=Local slots %v, want only the local endpoint", got)
	}
	d, _ = Render(snap1(sp, ep("10.0.0.2:80", 1)), RenderOptions{})
	if f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]; len(f.Slots) != 0 {
		t.Errorf("iTP=Local without a local endpoint: %d slots, want none", len(f.Slots))
	}
}

func TestRenderSkipsSCTPAndHeadless(t *testing.T) {
	sctp := svc(state.ServicePortName{Namespace: "ns", Name: "s", Protocol: v1.ProtocolSCTP}, "10.96.0.1")
	headless := svc(port("ns", "h"))
	for _, sp := range []*state.ServicePort{sctp, headless} {
		if d, errs := Render(snap1(sp, ep("10.0.0.1:80", 1)), RenderOptions{}); len(d) != 0 || len(errs) != 0 {
			t.Errorf("%s: %v %v", sp.Name, d, errs)
		}
	}
}

func TestAffinitySeconds(t *testing.T) {
	sp := svc(port("ns", "web"), "10.96.0.1")
	sp.AffinityTimeout = 3 * time.Hour
	d, _ := Render(snap1(sp, ep("10.0.0.1:80", 1)), RenderOptions{})
	if f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]; f.AffinitySec != 10800 {
		t.Errorf("affinity %d s", f.AffinitySec)
	}
}

func TestRenderAddressClashLesserPortWins(t *testing.T) {
	a, b := svc(port("ns", "a"), "10.96.0.1"), svc(port("ns", "b"), "10.96.0.1")
	s := snap1(a, ep("10.0.0.1:80", 1))
	s.ServiceMap[b.Name], s.EndpointMap[b.Name] = b, []state.Endpoint{ep("10.0.0.2:80", 1)}
	for range 20 { // map order varies
		d, errs := Render(s, RenderOptions{})
		f := d[newSvcKey(netip.MustParseAddr("10.96.0.1"), 80, protoTCP)]
		var pe *PortError
		if f.Port != a.Name || len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Port != b.Name {
			t.Fatalf("winner %s, errors %v: want ns/a to keep the address and ns/b reported", f.Port, errs)
		}
	}
}
