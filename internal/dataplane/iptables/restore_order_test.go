package iptables

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declarations lists the chains a restore input declares, in input order.
func declarations(in string) []string {
	var out []string
	for _, l := range strings.Split(in, "\n") {
		if strings.HasPrefix(l, ":") {
			out = append(out, strings.Fields(l[1:])[0])
		}
	}
	return out
}

// TestLargeRestoreDeclaresChainsInDescendingOrder: a cold sync of more than
// descendingAbove chains declares them in descending name order (the order
// iptables-nft-restore 1.8.9 inserts fastest), every chain once; a small one
// keeps the order it was built in.
func TestLargeRestoreDeclaresChainsInDescendingOrder(t *testing.T) {
	for _, n := range []int{10, 3 * descendingAbove} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s := largeService(n)
			withBucketAbove(t, 2*n)
			in := string(FullText(Render(snapshot(s), testRenderConfig())))
			got := declarations(in)
			if len(got) < n {
				t.Fatalf("%d chains declared, want at least %d", len(got), n)
			}
			nat := declarations(in[strings.Index(in, "*nat"):])
			descending := slices.IsSortedFunc(nat, func(a, b string) int { return strings.Compare(b, a) })
			if want := len(nat) > descendingAbove; descending != want {
				t.Fatalf("%d nat declarations in descending order: %v, want %v", len(nat), descending, want)
			}
			if uniq := slices.Compact(slices.Sorted(slices.Values(nat))); len(uniq) != len(nat) {
				t.Fatal("a chain is declared twice")
			}
		})
	}
}
