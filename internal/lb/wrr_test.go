package lb

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func pickSeq(t *testing.T, s Scheduler, bs []Backend, n int) string {
	t.Helper()
	var got []int
	for i := 0; i < n; i++ {
		got = append(got, pickIndex(t, s, client(i), bs))
	}
	return names(got)
}

// The kernel's passes for {4,3,2}: cw=4 takes A; cw=3 takes A B; cw=2 and cw=1 take
// A B C; then cw wraps to 4.
func TestWRRKernelOrder432(t *testing.T) {
	bs := backends(3, 4, 3, 2)
	s := mustNew(t, "wrr", Options{}, bs)
	want := strings.Repeat("AABABCABC", 3)
	if got := pickSeq(t, s, bs, len(want)); got != want {
		t.Fatalf("wrr {4,3,2} = %s, want %s", got, want)
	}
}

// With gcd 2 the kernel lowers mw by gcd-1: {4,2} runs passes cw=3 (A) and cw=1 (A B).
func TestWRRGCDStep(t *testing.T) {
	bs := backends(2, 4, 2)
	s := mustNew(t, "wrr", Options{}, bs)
	if got := pickSeq(t, s, bs, 9); got != "AABAABAAB" {
		t.Fatalf("wrr {4,2} = %s, want AABAABAAB", got)
	}
}

func TestWRRSplitsByWeightAndSkipsZero(t *testing.T) {
	bs := backends(3, 3, 0, 1)
	s := mustNew(t, "wrr", Options{}, bs)
	seq := pickSeq(t, s, bs, 400)
	if a, b, c := strings.Count(seq, "A"), strings.Count(seq, "B"), strings.Count(seq, "C"); a != 300 || b != 0 || c != 100 {
		t.Fatalf("wrr {3,0,1} over 400: A=%d B=%d C=%d, want 300/0/100", a, b, c)
	}
	s.Update(backends(2, 0, 0))
	if _, ok := s.Pick(client(0)); ok {
		t.Fatal("all weights 0: Pick succeeded")
	}
}

// A weight change restarts at the list head and keeps cw, like
// ip_vs_wrr_dest_changed: cw=1 finishes its pass over A B C, then cw=2 takes C.
func TestWRRUpdateRestartsAtHead(t *testing.T) {
	bs := backends(3, 1, 1, 1)
	s := mustNew(t, "wrr", Options{}, bs)
	if got := pickSeq(t, s, bs, 2); got != "AB" {
		t.Fatalf("got %s", got)
	}
	bs[2].Weight = 2
	s.Update(bs)
	if got := pickSeq(t, s, bs, 7); got != "ABCCABC" {
		t.Fatalf("after update to {1,1,2}: %s, want ABCCABC", got)
	}
}

// refWRR is ip_vs_wrr_schedule as a plain scan, to compare the indexed one with.
type refWRR struct {
	w               []int
	cur, cw, mw, di int
}

func newRefWRR(w []int) *refWRR {
	g, mx := 0, 0
	for _, x := range w {
		if x > 0 {
			g = gcd(g, x)
		}
		mx = max(mx, x)
	}
	if g == 0 {
		g = 1
	}
	return &refWRR{w: w, cur: -1, di: g, mw: mx - (g - 1), cw: mx - (g - 1)}
}

func (r *refWRR) pick() int {
	if r.mw <= 0 {
		return -1
	}
	for {
		for i := r.cur + 1; i < len(r.w); i++ {
			if r.w[i] >= r.cw {
				r.cur = i
				return i
			}
		}
		r.cur = -1
		if r.cw -= r.di; r.cw <= 0 {
			r.cw = r.mw
		}
	}
}

// Property: for any weights, including a few heavy backends among many light ones
// (where the tree does the jumping), the order is exactly the kernel scan's.
func TestWRRMatchesKernelScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 30; round++ {
		n := 1 + rng.IntN(300)
		w := make([]int, n)
		for i := range w {
			switch rng.IntN(4) {
			case 0:
				w[i] = 0
			case 1:
				w[i] = 1 + rng.IntN(100)
			default:
				w[i] = 2 * (1 + rng.IntN(3))
			}
		}
		bs := backends(n, w...)
		s := mustNew(t, "wrr", Options{}, bs)
		ref := newRefWRR(w)
		for k := 0; k < 3*n; k++ {
			want := ref.pick()
			b, ok := s.Pick(client(k))
			if want < 0 {
				if ok {
					t.Fatalf("round %d: picked %v, kernel picks none", round, b.Addr)
				}
				break
			}
			if !ok || b.Addr != bs[want].Addr {
				t.Fatalf("round %d pick %d: got %v (ok=%v), kernel picks %v; weights %v", round, k, b.Addr, ok, bs[want].Addr, w)
			}
		}
	}
}
