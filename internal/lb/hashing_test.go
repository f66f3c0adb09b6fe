package lb

import (
	"math"
	"net/netip"
	"testing"
)

// toDst makes a connection whose destination address varies with i (for dh).
func toDst(i int) ConnInfo {
	c := client(0)
	c.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, byte(i >> 16), byte(i >> 8), byte(i)}), 80)
	return c
}

// spread counts picks per backend index over n keys made by key.
func spread(t *testing.T, s Scheduler, bs []Backend, n int, key func(int) ConnInfo) []int {
	t.Helper()
	counts := make([]int, len(bs))
	for i := 0; i < n; i++ {
		counts[pickIndex(t, s, key(i), bs)]++
	}
	return counts
}

// assertEven fails unless every count is within tol (a fraction) of want.
func assertEven(t *testing.T, what string, counts []int, want float64, tol float64) {
	t.Helper()
	for i, c := range counts {
		if math.Abs(float64(c)-want) > tol*want {
			t.Fatalf("%s: backend %d got %d, want %.0f ±%.0f%%; all %v", what, i, c, want, tol*100, counts)
		}
	}
}

func TestHashSchedulersAreSticky(t *testing.T) {
	cases := []struct {
		name string
		key  func(int) ConnInfo
	}{{"sh", client}, {"dh", toDst}, {"mh", client}}
	for _, tc := range cases {
		bs := backends(7)
		s := mustNew(t, tc.name, Options{}, bs)
		first := make([]int, 500)
		for i := range first {
			first[i] = pickIndex(t, s, tc.key(i), bs)
		}
		// Same key, another run and a rebuilt scheduler: same backend.
		s2 := mustNew(t, tc.name, Options{}, bs)
		for i := range first {
			if a, b := pickIndex(t, s, tc.key(i), bs), pickIndex(t, s2, tc.key(i), bs); a != first[i] || b != first[i] {
				t.Fatalf("%s: key %d went to %d, then %d and %d", tc.name, i, first[i], a, b)
			}
		}
	}
}

func TestHashSchedulersSpreadEvenly(t *testing.T) {
	const n, keys = 10, 20000
	for _, tc := range []struct {
		name string
		key  func(int) ConnInfo
	}{{"sh", client}, {"dh", toDst}, {"mh", client}} {
		bs := backends(n)
		s := mustNew(t, tc.name, Options{}, bs)
		assertEven(t, tc.name, spread(t, s, bs, keys, tc.key), keys/n, 0.08)
	}
}

func TestSHWeightsAndFallback(t *testing.T) {
	bs := backends(2, 3, 1)
	s := mustNew(t, "sh", Options{}, bs)
	c := spread(t, s, bs, 8000, client)
	assertEven(t, "sh 3:1", []int{c[0], c[1] * 3}, 6000, 0.08)

	// Weight 0 keeps its buckets but refuses: without sh-fallback those clients fail.
	bs = backends(3, 1, 0, 1)
	plain := mustNew(t, "sh", Options{}, bs)
	fb := mustNew(t, "sh", Options{Flags: []string{"sh-fallback"}}, bs)
	refused := 0
	for i := 0; i < 3000; i++ {
		if _, ok := plain.Pick(client(i)); !ok {
			refused++
		}
		if got := pickIndex(t, fb, client(i), bs); got == 1 {
			t.Fatal("sh-fallback picked the weight-0 backend")
		}
	}
	if refused < 800 || refused > 1200 {
		t.Fatalf("sh without fallback refused %d of 3000, want about a third", refused)
	}
	if _, ok := mustNew(t, "sh", Options{Flags: []string{"sh-fallback"}}, backends(2, 0, 0)).Pick(client(0)); ok {
		t.Fatal("sh-fallback with all weights 0 picked a backend")
	}
}

func TestSHPortFlag(t *testing.T) {
	bs := backends(4)
	plain := mustNew(t, "sh", Options{}, bs)
	port := mustNew(t, "sh", Options{Flags: []string{"sh-port"}}, bs)
	fromPort := func(p int) ConnInfo {
		c := client(1)
		c.Src = netip.AddrPortFrom(c.Src.Addr(), uint16(20000+p))
		return c
	}
	if c := spread(t, plain, bs, 400, fromPort); c[pickIndex(t, plain, fromPort(0), bs)] != 400 {
		t.Fatalf("sh: one client on many ports spread over %v, want one backend", c)
	}
	assertEven(t, "sh-port", spread(t, port, bs, 4000, fromPort), 1000, 0.15)
}

func TestDHRefusesWeightZero(t *testing.T) {
	bs := backends(2, 1, 0)
	s := mustNew(t, "dh", Options{}, bs)
	ok0, refused := 0, 0
	for i := 0; i < 1000; i++ {
		if b, ok := s.Pick(toDst(i)); ok {
			if b.Addr != bs[0].Addr {
				t.Fatal("dh picked the weight-0 backend")
			}
			ok0++
		} else {
			refused++
		}
	}
	if refused < 400 || ok0 < 400 {
		t.Fatalf("dh {1,0}: %d served, %d refused; want about half each", ok0, refused)
	}
}
