package lb

import (
	"net/netip"
	"testing"
)

func TestRRCyclesInOrder(t *testing.T) {
	bs := backends(3)
	s := mustNew(t, "rr", Options{}, bs)
	var got []int
	for i := 0; i < 7; i++ {
		got = append(got, pickIndex(t, s, client(i), bs))
	}
	if names(got) != "ABCABCA" {
		t.Fatalf("rr order = %s, want ABCABCA", names(got))
	}
}

func TestRRSkipsWeightZero(t *testing.T) {
	bs := backends(3, 1, 0, 1)
	s := mustNew(t, "rr", Options{}, bs)
	var got []int
	for i := 0; i < 4; i++ {
		got = append(got, pickIndex(t, s, client(i), bs))
	}
	if names(got) != "ACAC" {
		t.Fatalf("rr order = %s, want ACAC", names(got))
	}
	s.Update(backends(2, 0, 0))
	if b, ok := s.Pick(client(0)); ok {
		t.Fatalf("all weights 0: picked %v", b.Addr)
	}
	s.Update(nil)
	if _, ok := s.Pick(client(0)); ok {
		t.Fatal("no backends: Pick succeeded")
	}
}

func TestRRUpdateContinuesAndKeepsCounters(t *testing.T) {
	bs := backends(4)
	s := mustNew(t, "rr", Options{}, bs)
	pickIndex(t, s, client(0), bs) // A
	pickIndex(t, s, client(0), bs) // B
	s.Opened(bs[1].Addr, true)
	s.Opened(bs[1].Addr, false)
	// Remove A: the next pick continues after B, at C.
	s.Update(bs[1:])
	if got := pickIndex(t, s, client(0), bs); got != 2 {
		t.Fatalf("after update picked %s, want C", names([]int{got}))
	}
	c := s.Counters()
	if len(c) != 3 || c[0].Addr != bs[1].Addr || c[0].Active != 1 || c[0].Inactive != 1 {
		t.Fatalf("counters after update = %+v, want B with 1 active 1 inactive first", c)
	}
	s.Closed(bs[1].Addr, true)
	s.Closed(bs[1].Addr, true) // extra close must not go negative
	if c := s.Counters(); c[0].Active != 0 || c[0].Inactive != 1 {
		t.Fatalf("counters after close = %+v", c[0])
	}
}

// IPv6 and IPv4-mapped backends are counted and kept across updates like IPv4 ones.
func TestCountersIPv6(t *testing.T) {
	bs := []Backend{
		{Addr: netip.MustParseAddrPort("[fd00::1]:80"), Weight: 1},
		{Addr: netip.MustParseAddrPort("[fd00::2]:80"), Weight: 1},
		{Addr: netip.MustParseAddrPort("10.0.0.1:80"), Weight: 1},
	}
	s := mustNew(t, "lc", Options{}, bs)
	s.Opened(bs[0].Addr, true)
	s.Opened(bs[2].Addr, true)
	if got := pickIndex(t, s, client(0), bs); got != 1 {
		t.Fatalf("picked %d, want the idle IPv6 backend 1", got)
	}
	s.Update(bs[:1])
	c := s.Counters()
	if len(c) != 1 || c[0].Active != 1 {
		t.Fatalf("after update: %+v, want fd00::1 with 1 active", c)
	}
	s.Closed(bs[0].Addr, true)
	if c := s.Counters(); c[0].Active != 0 {
		t.Fatalf("after close: %+v", c)
	}
}
