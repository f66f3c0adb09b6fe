package lb

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestReplaceMiddleMatchesReplaceAll applies random lists (endpoints added,
// removed, reweighted, moved, repeated; IPv4 and IPv6) to two pools, one
// through replace (which takes the incremental path whenever it can) and one
// through replaceAll, and requires the same destinations in the same order
// with positions, index and removed sets equal, and the counters of the
// addresses that stay kept on the same dest.
func TestReplaceMiddleMatchesReplaceAll(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var fast, full pool
	list := randomList(rng, nil)
	fast.replace(list)
	full.replaceAll(list)
	incremental := 0
	for step := 0; step < 2000; step++ {
		before := map[netip.AddrPort]*dest{}
		for _, d := range fast.dests {
			d.active = int64(rng.IntN(5)) // counters to be carried over
			before[d.Addr] = d
		}
		list = randomList(rng, list)
		if keepsEnd(fast.dests, list) && !repeats(list) && len(list) > smallPool {
			incremental++ // replaceMiddle applies
		}
		gotRemoved := addrsOf(fast.replace(list))
		wantRemoved := addrsOf(full.replaceAll(list))
		if !slices.Equal(gotRemoved, wantRemoved) {
			t.Fatalf("step %d: removed %v, want %v", step, gotRemoved, wantRemoved)
		}
		if len(fast.dests) != len(full.dests) {
			t.Fatalf("step %d: %d dests, want %d", step, len(fast.dests), len(full.dests))
		}
		for i, d := range fast.dests {
			if d.Backend != full.dests[i].Backend || d.pos != i {
				t.Fatalf("step %d: dest %d = %+v at pos %d, want %+v", step, i, d.Backend, d.pos, full.dests[i].Backend)
			}
			if fast.lookup(d.Addr) != d {
				t.Fatalf("step %d: index does not find %s", step, d.Addr)
			}
			if old := before[d.Addr]; old != nil && old != d {
				t.Fatalf("step %d: %s staying lost its dest (and its counters)", step, d.Addr)
			}
		}
		if n := len(fast.v4) + len(fast.byAddr); len(list) > smallPool && n != len(fast.dests) {
			t.Fatalf("step %d: index holds %d, want %d", step, n, len(fast.dests))
		}
		if len(list) <= smallPool && (fast.v4 != nil || fast.byAddr != nil) {
			t.Fatalf("step %d: a pool of %d has an index", step, len(list))
		}
	}
	if incremental < 500 {
		t.Fatalf("only %d of 2000 replacements took the incremental path", incremental)
	}
}

// keepsEnd reports whether bs starts or ends with the address of ds's first
// or last destination.
func keepsEnd(ds []*dest, bs []Backend) bool {
	return len(ds) > 0 && len(bs) > 0 && (ds[0].Addr == bs[0].Addr || ds[len(ds)-1].Addr == bs[len(bs)-1].Addr)
}

func repeats(bs []Backend) bool {
	seen := map[netip.AddrPort]bool{}
	for _, b := range bs {
		if seen[b.Addr] {
			return true
		}
		seen[b.Addr] = true
	}
	return false
}

func randomList(rng *rand.Rand, prev []Backend) []Backend {
	var out []Backend
	for _, b := range prev {
		switch rng.IntN(20) {
		case 0: // removed
		case 1:
			b.Weight = rng.IntN(3)
			out = append(out, b)
		default:
			out = append(out, b)
		}
	}
	for n := rng.IntN(3); n > 0 || len(out) == 0; n-- {
		b := Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(200))}), 80), Weight: 1}
		if rng.IntN(5) == 0 {
			b.Addr = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0xfd, 15: byte(rng.IntN(50))}), 80)
		}
		out = slices.Insert(out, rng.IntN(len(out)+1), b) // possibly a repeat
	}
	if rng.IntN(30) == 0 && len(out) > 1 { // two swapped
		i, j := rng.IntN(len(out)), rng.IntN(len(out))
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func addrsOf(ds []*dest) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.Addr)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}
