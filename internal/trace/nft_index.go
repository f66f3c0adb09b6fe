package trace

import (
	"net/netip"
	"strconv"
	"strings"
)

// elemIndex finds elements of a large set or map by exact key in O(1); elements
// with ranges, prefixes or wildcards are scanned. Maglev select maps have
// thousands of elements, looked up once per slot.
type elemIndex struct {
	exact map[string]*nftElement
	other []*nftElement
}

func buildIndex(elems []nftElement, kinds []string) *elemIndex {
	ix := &elemIndex{exact: map[string]*nftElement{}}
	for i := range elems {
		e := &elems[i]
		k, ok := canonicalKey(e.key, kinds)
		if !ok {
			ix.other = append(ix.other, e)
			continue
		}
		if _, dup := ix.exact[k]; !dup {
			ix.exact[k] = e
		}
	}
	return ix
}

func (ix *elemIndex) find(key []nftVal) *nftElement {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	if e := ix.exact[strings.Join(parts, " . ")]; e != nil {
		return e
	}
	for _, e := range ix.other {
		if matchKey(key, e.key) {
			return e
		}
	}
	return nil
}

// canonicalKey writes literals the way nftVal.String writes values of each kind.
func canonicalKey(lits []string, kinds []string) (string, bool) {
	if len(lits) != len(kinds) {
		return "", false
	}
	parts := make([]string, len(lits))
	for i, l := range lits {
		l = unquote(l)
		switch kinds[i] {
		case "addr":
			a, err := netip.ParseAddr(l)
			if err != nil {
				return "", false
			}
			parts[i] = a.String()
		case "num":
			if strings.Contains(l, "-") {
				return "", false
			}
			n, ok := parseNum(l)
			if !ok {
				return "", false
			}
			parts[i] = strconv.FormatUint(n, 10)
		case "proto":
			parts[i] = protoNumber(l)
		default:
			return "", false
		}
	}
	return strings.Join(parts, " . "), true
}
