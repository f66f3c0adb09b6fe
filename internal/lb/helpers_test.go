package lb

import (
	"net/netip"
	"testing"
)

// addr returns a distinct backend address for index i.
func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 8080)
}

// backends builds n backends with the given weights (weight 1 when weights is short).
func backends(n int, weights ...int) []Backend {
	out := make([]Backend, n)
	for i := range out {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = Backend{Addr: addr(i), Weight: w}
	}
	return out
}

func mustNew(t testing.TB, name string, o Options, bs []Backend) Scheduler {
	t.Helper()
	s, err := New(name, o)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	s.Update(bs)
	return s
}

// client returns a connection from a distinct client address for index i.
func client(i int) ConnInfo {
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(10000+i%50000))
	return ConnInfo{Src: src, Dst: netip.MustParseAddrPort("10.96.0.10:80"), Protocol: "TCP"}
}

// pickIndex picks and maps the chosen backend back to its index in bs.
func pickIndex(t testing.TB, s Scheduler, c ConnInfo, bs []Backend) int {
	t.Helper()
	b, ok := s.Pick(c)
	if !ok {
		t.Fatalf("%s: Pick found no backend", s.Name())
	}
	for i := range bs {
		if bs[i].Addr == b.Addr {
			return i
		}
	}
	t.Fatalf("%s: Pick returned %v, not a backend", s.Name(), b.Addr)
	return -1
}

// names labels backend indexes A, B, C... for readable sequences.
func names(idx []int) string {
	s := ""
	for _, i := range idx {
		s += string(rune('A' + i))
	}
	return s
}
