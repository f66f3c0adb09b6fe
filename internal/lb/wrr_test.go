package lb

import (
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
