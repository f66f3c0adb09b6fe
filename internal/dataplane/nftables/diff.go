//go:build linux

package nftables

import "reflect"

// diff is the set of operations that turns old fragments into new ones. It is pure:
// queue (netlink_linux.go) turns it into one batch.
type diff struct {
	addSets     []*set
	addChains   []*chain // created empty
	flushChains []string // changed chains, emptied before their rules are re-added
	ruleChains  []*chain // chains whose rules are (re)written
	delElems    []elem
	addElems    []elem
	// newStaleChains and newStaleSets stop being used by this diff: emptied now,
	// deleted by a later sync.
	newStaleChains []string
	newStaleSets   []string
	// deleteChains and deleteSets were stale before this diff and are deleted now.
	deleteChains []string
	deleteSets   []string
	// deletedStale are stale names this diff deletes or revives.
	deletedStale map[string]bool
	kinds        map[string]setKind

	staleChains, staleSets map[string]bool
}

// newDiff starts a diff; live names every chain and set the new fragments declare,
// so stale objects with those names are revived instead of deleted.
func newDiff(t *tableSync, live map[string]bool) *diff {
	d := &diff{deletedStale: map[string]bool{}, kinds: t.kinds,
		staleChains: t.staleChains, staleSets: t.staleSets}
	for name := range t.staleChains {
		if !live[name] {
			d.deleteChains = append(d.deleteChains, name)
			d.deletedStale[name] = true
		}
	}
	for name := range t.staleSets {
		if !live[name] {
			d.deleteSets = append(d.deleteSets, name)
			d.deletedStale[name] = true
		}
	}
	return d
}

// add records the operations turning old into new; either may be nil. A non-nil
// delta stands for the difference of their elements.
func (d *diff) add(old, new *fragment, delta *elemDelta) {
	if old == nil {
		old = &fragment{}
	}
	if new == nil {
		new = &fragment{}
	}
	oldSets := map[string]*set{}
	for _, s := range old.sets {
		oldSets[s.name] = s
	}
	newSets := map[string]bool{}
	for _, s := range new.sets {
		newSets[s.name] = true
		d.kinds[s.name] = s.kind
		if _, had := oldSets[s.name]; had {
			continue
		}
		if d.staleSets[s.name] {
			d.deletedStale[s.name] = true // still declared, emptied when it went stale
			continue
		}
		d.addSets = append(d.addSets, s)
	}
	for _, s := range old.sets {
		if !newSets[s.name] {
			d.newStaleSets = append(d.newStaleSets, s.name)
		}
	}

	oldChains := map[string]*chain{}
	for _, c := range old.chains {
		oldChains[c.name] = c
	}
	newChains := map[string]bool{}
	for _, c := range new.chains {
		newChains[c.name] = true
		oc, had := oldChains[c.name]
		switch {
		case had && sameRules(oc.rules, c.rules):
			continue
		case had:
			d.flushChains = append(d.flushChains, c.name)
		case d.staleChains[c.name]:
			d.deletedStale[c.name] = true // exists, flushed when it went stale
		default:
			d.addChains = append(d.addChains, c)
		}
		d.ruleChains = append(d.ruleChains, c)
	}
	for _, c := range old.chains {
		if !newChains[c.name] {
			d.newStaleChains = append(d.newStaleChains, c.name)
		}
	}
	if delta != nil {
		d.delElems = append(d.delElems, delta.del...)
		d.addElems = append(d.addElems, delta.add...)
		return
	}
	d.diffElems(old.elems, new.elems, newSets)
}

func (d *diff) diffElems(old, new []elem, newSets map[string]bool) {
	// Keyed by the element without its value: the same identity as elem.key,
	// without building a string per element (a Service's elements are all
	// compared on every change to it).
	oldBy := make(map[elem]int, len(old))
	for i, e := range old {
		oldBy[e.identity()] = i
	}
	newBy := make(map[elem]int, len(new))
	for i, e := range new {
		newBy[e.identity()] = i
	}
	for k, i := range oldBy {
		e := old[i]
		if n, keep := newBy[k]; keep && new[n] == e {
			continue
		}
		// Elements of a set going stale go with its flush.
		set := e.set()
		if _, ownSet := d.kinds[set]; ownSet && !newSets[set] && isOwnSet(set) {
			continue
		}
		d.delElems = append(d.delElems, e)
	}
	for k, i := range newBy {
		e := new[i]
		if o, had := oldBy[k]; had && old[o] == e {
			continue
		}
		d.addElems = append(d.addElems, e)
	}
}

// sameRules reports whether two rule lists are equal statement by statement.
// Statements are compared as values (equal values print the same text), which
// costs no text rendering; a statement type that cannot be compared falls back
// to its text.
func sameRules(a, b []rule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j, x := range a[i] {
			y := b[i][j]
			if reflect.TypeOf(x) != reflect.TypeOf(y) {
				return false
			}
			if !reflect.TypeOf(x).Comparable() {
				if x.text() != y.text() {
					return false
				}
				continue
			}
			if x != y {
				return false
			}
		}
	}
	return true
}

// isOwnSet reports whether a set belongs to one ServicePort (rather than being one of
// the shared maps, which never go stale).
func isOwnSet(name string) bool { return !sharedSets[name] }

func (d *diff) empty() bool {
	return len(d.addSets)+len(d.addChains)+len(d.flushChains)+len(d.ruleChains)+len(d.delElems)+
		len(d.addElems)+len(d.newStaleChains)+len(d.newStaleSets)+len(d.deleteChains)+len(d.deleteSets) == 0
}

// resolveRefs applies element reference counts: an element several owners render
// (a hairpin pair of an endpoint shared by Services, an external IP two Services
// claim) is added for the first owner and deleted with the last. Deletes are
// counted before adds, so an owner changing an element's value rewrites it.
func (d *diff) resolveRefs(refs refCounts) {
	var dels, adds []elem
	var buf []byte
	for _, e := range d.delElems {
		k := e.ref(&buf)
		if refs[k]--; refs[k] <= 0 {
			delete(refs, k)
			dels = append(dels, e)
		}
	}
	for _, e := range d.addElems {
		k := e.ref(&buf)
		if refs[k]++; refs[k] == 1 {
			adds = append(adds, e)
		}
	}
	d.delElems, d.addElems = dels, adds
}
