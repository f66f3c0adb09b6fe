//go:build linux

package ipvs

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// ipset's defaults, which kube-proxy's IPVS mode creates every hash set with: a set
// of up to 65,536 entries is created exactly as kube-proxy's.
const (
	defaultMaxElem  = 65536
	defaultHashSize = 1024
)

// growTempSet is the temporary set a growing set is rebuilt in before the swap
// (31 characters at most, like every set name; one at a time).
const growTempSet = "KPROXY-GROW-TMP"

// setSize is a hash set's create parameters.
type setSize struct {
	MaxElem  int
	HashSize int
}

// sizeFor sizes a hash set that must hold n entries: maxelem with room to double
// (the next power of two of 2n, at least ipset's 65,536) and the hash size the
// kernel would grow to for n entries (a quarter of the next power of two, at least
// 1,024), so that filling it does not rehash the table again and again.
func sizeFor(n int) setSize {
	return setSize{MaxElem: max(defaultMaxElem, nextPow2(2*n)), HashSize: max(defaultHashSize, nextPow2(n)/4)}
}

// nextPow2 is the smallest power of two at least n (1 for n <= 1).
func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// setFamily is the definition of a set name of either family.
func setFamily(name string) (d setDef, v6, ok bool) {
	for _, d := range setDefs {
		switch name {
		case d.Name:
			return d, false, true
		case setName(d.Name, netip.IPv6Unspecified()):
			return d, true, true
		}
	}
	return setDef{}, false, false
}

// isHash reports whether the set has a maxelem (bitmap:port sets hold every port).
func (d setDef) isHash() bool { return strings.HasPrefix(d.Type, "hash:") }

// createLine is the `ipset restore` line creating the set name of definition d.
func (d setDef) createLine(name string, v6 bool, sz setSize) string {
	if !d.isHash() {
		return fmt.Sprintf("create %s %s range 0-65535 comment\n", name, d.Type)
	}
	family := "inet"
	if v6 {
		family = "inet6"
	}
	return fmt.Sprintf("create %s %s family %s hashsize %d maxelem %d comment\n", name, d.Type, family, sz.HashSize, sz.MaxElem)
}

// parseMaxElems reads the maxelem of each of our hash sets from `ipset save`
// output (ipset's default where a create line has none).
func parseMaxElems(text string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "create" {
			continue
		}
		if d, _, ok := setFamily(f[1]); !ok || !d.isHash() {
			continue
		}
		out[f[1]] = defaultMaxElem
		for i := 3; i+1 < len(f); i++ {
			if f[i] == "maxelem" {
				if n, err := strconv.Atoi(f[i+1]); err == nil {
					out[f[1]] = n
				}
			}
		}
	}
	return out
}

// hasSet reports whether `ipset save` output lists the set.
func hasSet(text, name string) bool {
	return strings.HasPrefix(text, "create "+name+" ") || strings.Contains(text, "\ncreate "+name+" ")
}

// grow plans the sets that must be replaced by larger ones: those d adds to
// whose count of entries after d exceeds their maxelem. It returns the new size
// of each.
func grow(d setDiff, counts, maxElem map[string]int) map[string]setSize {
	var out map[string]setSize
	for _, e := range d.Add {
		have, ok := maxElem[e.Set]
		if !ok || counts[e.Set] <= have {
			continue // bitmap sets have none; absent sets are created sized
		}
		if out == nil {
			out = map[string]setSize{}
		}
		out[e.Set] = sizeFor(counts[e.Set])
	}
	return out
}

// renderGrow is the `ipset restore` text that replaces the live set name by a set
// of size sz holding entries, such that the rules matching the set never see it
// missing or short of an entry: the temporary set is created (flushed, in case an
// interrupted restore left it behind), filled, swapped with the live set (swap
// exchanges the two sets atomically under the rules that reference the name) and
// destroyed, now holding the old set.
func renderGrow(name string, sz setSize, entries []string) string {
	d, v6, _ := setFamily(name)
	var b strings.Builder
	b.WriteString(d.createLine(growTempSet, v6, sz))
	fmt.Fprintf(&b, "flush %s\n", growTempSet)
	sorted := append([]string(nil), entries...)
	sort.Strings(sorted)
	for _, e := range sorted {
		fmt.Fprintf(&b, "add %s %s\n", growTempSet, e)
	}
	fmt.Fprintf(&b, "swap %s %s\n", growTempSet, name)
	fmt.Fprintf(&b, "destroy %s\n", growTempSet)
	return b.String()
}
