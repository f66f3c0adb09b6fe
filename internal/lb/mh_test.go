package lb

import (
	"math"
	"net/netip"
	"testing"
)

func mhTable(t *testing.T, o Options, bs []Backend) *mh {
	t.Helper()
	return mustNew(t, "mh", o, bs).(*mh)
}

// slotShare counts table slots per backend address.
func slotShare(s *mh) map[int32]int {
	m := map[int32]int{}
	for _, p := range s.table {
		m[p]++
	}
	return m
}

func TestMHBalancesWithinOnePercent(t *testing.T) {
	s := mhTable(t, Options{}, backends(100))
	if len(s.table) != DefaultMHTableSize {
		t.Fatalf("table size %d, want %d", len(s.table), DefaultMHTableSize)
	}
	ideal := float64(DefaultMHTableSize) / 100
	for p, n := range slotShare(s) {
		if math.Abs(float64(n)-ideal) > 0.01*ideal {
			t.Fatalf("backend %d has %d slots, ideal %.1f ±1%%", p, n, ideal)
		}
	}
}

func TestMHRemovalMovesLittle(t *testing.T) {
	bs := backends(100)
	before := mhTable(t, Options{}, bs)
	gone := bs[42].Addr
	after := mhTable(t, Options{}, append(append([]Backend{}, bs[:42]...), bs[43:]...))
	moved := 0
	for i := range after.table {
		if before.dests[before.table[i]].Addr != after.dests[after.table[i]].Addr {
			moved++
		}
		if after.dests[after.table[i]].Addr == gone {
			t.Fatal("removed backend still owns a slot")
		}
	}
	// The removed backend's 1% must move; Maglev moves somewhat more.
	frac := float64(moved) / float64(len(after.table))
	if frac > 0.02 {
		t.Fatalf("removing 1 of 100 backends moved %.2f%% of slots, want <= 2%%", frac*100)
	}
	t.Logf("moved %.2f%% of slots (1%% ideal)", frac*100)
}

func TestMHWeightsAndZero(t *testing.T) {
	bs := backends(3, 2, 1, 0)
	s := mhTable(t, Options{MHTableSize: 10007}, bs)
	share := slotShare(s)
	if share[2] != 0 {
		t.Fatalf("weight-0 backend owns %d slots", share[2])
	}
	if r := float64(share[0]) / float64(share[1]); r < 1.9 || r > 2.1 {
		t.Fatalf("weights 2:1 gave slots %d:%d", share[0], share[1])
	}
	s.Update(backends(2, 0, 0))
	if _, ok := s.Pick(client(0)); ok {
		t.Fatal("all weights 0: Pick succeeded")
	}
}

func TestMHOptions(t *testing.T) {
	if _, err := New("mh", Options{MHTableSize: 65536}); err == nil {
		t.Fatal("non-prime table size accepted")
	}
	if err := Validate("mh", []string{"mh-port", "mh-fallback"}); err != nil {
		t.Fatal(err)
	}
	if err := Validate("mh", []string{"sh-port"}); err == nil {
		t.Fatal("mh accepted sh-port")
	}
	bs := backends(8)
	port := mhTable(t, Options{Flags: []string{"mh-port"}, MHTableSize: 251}, bs)
	plain := mhTable(t, Options{MHTableSize: 251}, bs)
	seenPort, seenPlain := map[int]bool{}, map[int]bool{}
	for p := 0; p < 64; p++ {
		c := client(5)
		c.Src = netip.AddrPortFrom(c.Src.Addr(), uint16(30000+p))
		seenPort[pickIndex(t, port, c, bs)] = true
		seenPlain[pickIndex(t, plain, c, bs)] = true
	}
	if len(seenPlain) != 1 || len(seenPort) < 4 {
		t.Fatalf("one client, 64 ports: plain used %d backends (want 1), mh-port %d (want several)", len(seenPlain), len(seenPort))
	}
}
