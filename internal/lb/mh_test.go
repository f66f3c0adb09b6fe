package lb

import (
	"math"
	"net/netip"
	"slices"
	"testing"
)

func mhTable(t *testing.T, o Options, bs []Backend) *mh {
	t.Helper()
	return mustNew(t, "mh", o, bs).(*mh)
}

// slotShare counts table slots per backend position.
func slotShare(s *mh) map[int]int {
	m := map[int]int{}
	for i := 0; i < s.size; i++ {
		m[s.owner(i).pos]++
	}
	return m
}

func TestMHBalancesWithinOnePercent(t *testing.T) {
	s := mhTable(t, Options{}, backends(100))
	if len(s.small) != DefaultMHTableSize {
		t.Fatalf("table size %d, want %d", len(s.small), DefaultMHTableSize)
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
	for i := 0; i < after.size; i++ {
		if before.owner(i).Addr != after.owner(i).Addr {
			moved++
		}
		if after.owner(i).Addr == gone {
			t.Fatal("removed backend still owns a slot")
		}
	}
	// The removed backend's 1% must move; Maglev moves somewhat more.
	frac := float64(moved) / float64(after.size)
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

// Beyond 65536 slot owners the table switches to 32-bit entries.
func TestMHManyBackends(t *testing.T) {
	const n, size = 70000, 131071
	bs := backends(n)
	s := mhTable(t, Options{MHTableSize: size}, bs)
	if len(s.large) != size || len(s.small) != 0 {
		t.Fatalf("table: %d large, %d small entries; want %d large", len(s.large), len(s.small), size)
	}
	if share := slotShare(s); len(share) != n {
		t.Fatalf("%d of %d backends own slots", len(share), n)
	}
	first := pickIndex(t, s, client(3), bs)
	if again := pickIndex(t, s, client(3), bs); again != first {
		t.Fatalf("client moved from %d to %d", first, again)
	}
}

// An Update with the same list keeps the table; a weight change rebuilds it.
func TestMHUpdateRebuildsOnlyOnChange(t *testing.T) {
	bs := backends(4)
	s := mhTable(t, Options{MHTableSize: 1009}, bs)
	built := &s.built[0]
	s.Update(slices.Clone(bs))
	if &s.built[0] != built {
		t.Fatal("an identical update rebuilt the table")
	}
	bs[0].Weight = 3
	s.Update(bs)
	if share := slotShare(s); share[0] < 2*share[1] {
		t.Fatalf("after weight 3 on A: slots %v, want A about 3x B", share)
	}
}

// MaglevTable is the mh scheduler's table, indexed by position in the input.
func TestMaglevTableMatchesScheduler(t *testing.T) {
	bs := backends(5, 2, 1, 0, 1, 3)
	s := mhTable(t, Options{MHTableSize: 1009}, bs)
	table, err := MaglevTable(bs, 1009)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 1009 {
		t.Fatalf("table has %d slots, want 1009", len(table))
	}
	for i, b := range table {
		if bs[b].Addr != s.owner(i).Addr {
			t.Fatalf("slot %d: MaglevTable says %v, scheduler %v", i, bs[b].Addr, s.owner(i).Addr)
		}
		if b == 2 {
			t.Fatalf("slot %d owned by the weight-0 backend", i)
		}
	}
}

func TestMaglevTableErrorsAndEmpty(t *testing.T) {
	if _, err := MaglevTable(backends(2), 4096); err == nil {
		t.Fatal("non-prime size accepted")
	}
	if table, err := MaglevTable(backends(2, 0, 0), 251); err != nil || table != nil {
		t.Fatalf("all weights 0: table %v, err %v; want nil, nil", table, err)
	}
}

// Removing one backend rewrites only about its share of slots.
func TestMaglevTableRemovalMovesLittle(t *testing.T) {
	bs := backends(10)
	before, _ := MaglevTable(bs, 4093)
	rest := append(append([]Backend{}, bs[:3]...), bs[4:]...)
	after, _ := MaglevTable(rest, 4093)
	moved, was := 0, 0
	for i := range before {
		if before[i] == 3 {
			was++
		}
		if bs[before[i]].Addr != rest[after[i]].Addr {
			moved++
		}
	}
	if moved < was || float64(moved) > 1.5*float64(was) {
		t.Fatalf("removing 1 of 10 moved %d slots; it owned %d", moved, was)
	}
}
