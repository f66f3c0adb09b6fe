//go:build linux

package nftables

import (
	"errors"
	"fmt"
	"os"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// tableSync keeps what kproxy last wrote to one family's table, so a sync sends only
// the difference and never lists the kernel's table on the hot path.
type tableSync struct {
	fam family
	// nsFD, when not 0, is the network namespace to program (tests).
	nsFD int
	// applied is nil when the kernel's content is unknown: the next sync is full.
	// It keeps only the fragments that are not derivable; the others are rendered
	// again from snap with opts when needed (oldFragment, eachFragment).
	applied *ruleset
	// snap and opts are the snapshot and render options applied was rendered from.
	// Snapshots are never modified once handed out (state.Tracker), so snap
	// renders each derivable fragment exactly as it was applied.
	snap *state.Snapshot
	opts renderOptions
	// staleChains and staleSets were flushed by an earlier sync and are deleted by
	// the next one, once nothing can refer to them any more.
	staleChains map[string]bool
	staleSets   map[string]bool
	// kinds remembers each set's kind, for element operations.
	kinds map[string]setKind
	// refs counts the owners of each element key (see diff.resolveRefs).
	refs refCounts
	// conn stays open from sync to sync. Closing an nf_tables netlink socket makes
	// the kernel wait for the release of what earlier commits deleted (an RCU grace
	// period, 5-25 ms measured here, whatever the table size), and that wait was
	// most of every one-Service change. Kept open, the release runs in the
	// background; the commit itself is complete once acked.
	conn nfConn
	// dial, when set, opens conn instead of a netlink socket (tests).
	dial dialer
	// commits counts the transactions committed, for the generation gate
	// (digest_linux.go).
	commits int
}

// batch starts a transaction on the table's lasting connection, opening it first
// if needed.
func (t *tableSync) batch() (*batch, error) {
	if t.conn == nil {
		c, err := t.open()
		if err != nil {
			return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
		}
		t.conn = c
	}
	return batchOn(t.fam, t.conn), nil
}

func (t *tableSync) open() (nfConn, error) {
	if t.dial != nil {
		return t.dial()
	}
	return openKernelConn(t.nsFD)
}

// closeConn drops the lasting connection; the next sync opens a fresh one. Done
// after a failed transaction too, so nothing half-sent lingers on the socket.
func (t *tableSync) closeConn() {
	if t.conn != nil {
		_ = t.conn.CloseLasting()
		t.conn = nil
	}
}

func newTableSync(f family) *tableSync {
	return &tableSync{fam: f, staleChains: map[string]bool{}, staleSets: map[string]bool{}, kinds: map[string]setKind{}}
}

// forget drops the model of what was applied: the next sync is full.
func (t *tableSync) forget() { t.applied, t.refs, t.snap = nil, nil, nil }

// oldFragment is the applied fragment of n: the kept one, or the derivable one
// rendered again from the applied snapshot; nil if n had none.
func (t *tableSync) oldFragment(n state.ServicePortName) *fragment {
	if fr, ok := t.applied.services[n]; ok {
		return fr
	}
	if t.snap == nil {
		return nil
	}
	sp, eps := t.snap.Port(n)
	if sp == nil {
		return nil
	}
	return renderService(t.opts, sp, state.CategorizeEndpoints(sp, eps, t.snap.Node))
}

// eachFragment calls each with every applied fragment, the node's first: the kept
// ones, and the derivable ones rendered again from the applied snapshot (one at a
// time: they are never all in memory at once).
func (t *tableSync) eachFragment(each func(*fragment) error) error {
	for _, fr := range t.applied.fragmentsUnordered() {
		if err := each(fr); err != nil {
			return err
		}
	}
	if t.snap == nil {
		return nil
	}
	for n, sp := range t.snap.All() {
		if _, kept := t.applied.services[n]; kept {
			continue
		}
		fr := renderService(t.opts, sp, state.CategorizeEndpoints(sp, t.snap.EndpointsOf(n), t.snap.Node))
		if err := each(fr); err != nil {
			return err
		}
	}
	return nil
}

// full replaces the table with a fresh render of req in one transaction. It
// renders as it goes: a derivable fragment's elements are queued and the fragment
// dropped, so the cold sync never holds the whole model (~1.4 million elements at
// 100,000 Services x 5 endpoints) beside the batch. warn sees every fragment.
//
// The order of the transaction matters to the kernel beyond "declared before
// used": a rule that looks up a map with data (`map @service-endpoints`, `vmap
// @…`) makes the kernel walk every element the map holds at that point of the
// transaction (nf_tables_bind_set), once per chain. So every rule that binds a
// shared map comes before the elements are streamed: the node's pick chains
// (which bind service-endpoints and nodeport-endpoints), and the own pick chains
// of the Services with more endpoints than the shared chains serve, rendered
// first for that. Only the rules that look up the shared verdict maps wait until
// those are declared, after the render pass (their size counts the kept
// fragments' elements), when the maps are still empty: derivable fragments have
// no verdict element, so nothing goes to them before.
func (t *tableSync) full(o renderOptions, req *dataplane.Request, warn func(*fragment)) (int, error) {
	t.forget()
	b, err := t.batch()
	if err != nil {
		return 0, err
	}
	b.resetTable()
	snap := req.Snapshot
	node := renderNode(o)
	rs := newRuleset(o.fam, node, 0)
	t.kinds = map[string]setKind{}
	sized := map[string]bool{}
	for _, s := range node.sets {
		t.kinds[s.name] = s.kind
		if sizedMap(s) {
			sized[s.name] = true
			continue
		}
		b.addSet(s)
	}
	for _, c := range node.chains {
		b.addChain(c)
	}
	var late []*chain // node chains that look up a shared verdict map
	for _, c := range node.chains {
		if looksUpMap(c, sized) {
			late = append(late, c)
			continue
		}
		b.addRules(c)
	}
	q := newElemQueue(b, t.kinds)
	render := func(n state.ServicePortName, sp *state.ServicePort) {
		fr := renderService(o, sp, req.Endpoints(n))
		warn(fr)
		rs.put(n, nil, fr)
		if fr.derivable() {
			q.put(fr.elems)
			return
		}
		// Kept: its objects and rules now, its elements at the end.
		for _, s := range fr.sets {
			t.kinds[s.name] = s.kind
			b.addSet(s)
		}
		for _, c := range fr.chains {
			b.addChain(c)
		}
		for _, c := range fr.chains {
			if looksUpMap(c, sized) {
				late = append(late, c)
				continue
			}
			b.addRules(c)
		}
	}
	names := snap.SortedNames()
	large := func(n state.ServicePortName) bool { return len(snap.EndpointsOf(n)) > maxSharedPick }
	for _, n := range names {
		if sp, _ := snap.Port(n); large(n) {
			render(n, sp)
		}
	}
	for _, n := range names {
		if sp, _ := snap.Port(n); !large(n) {
			render(n, sp)
		}
	}
	frs := rs.fragmentsInOrder() // the node's and the kept ones
	sizes := sharedMapSizes(frs)
	for _, s := range node.sets {
		if sized[s.name] {
			declared := *s
			declared.size = verdictMapSize(sizes[s.name])
			b.addSet(&declared)
		}
	}
	for _, c := range late {
		b.addRules(c)
	}
	for _, fr := range frs {
		q.put(fr.elems)
	}
	t.refs = q.close()
	if err := b.commit(); err != nil {
		t.closeConn()
		return b.written, err
	}
	t.commits++
	t.applied, t.snap, t.opts = rs, snap, o
	t.staleChains, t.staleSets = map[string]bool{}, map[string]bool{}
	return b.written, nil
}

// sizedMap says s is one of the shared verdict maps a full sync declares with a
// size (verdictMapSize).
func sizedMap(s *set) bool { return s.kind == kindServiceKey || s.kind == kindPortKey }

// looksUpMap says a rule of c looks up one of the named verdict maps.
func looksUpMap(c *chain, maps map[string]bool) bool {
	for _, r := range c.rules {
		for _, st := range r {
			switch v := st.(type) {
			case serviceVmap:
				if maps[v.set] {
					return true
				}
			case portVmap:
				if maps[v.set] {
					return true
				}
			}
		}
	}
	return false
}

// verdictMapSizeMin is the smallest declared size of the shared verdict maps
// (a variable so tests can make one overflow).
var verdictMapSizeMin = 1024

// verdictMapSize is the size declared for a shared verdict map (service-ips,
// service-nodeports, firewall-ips) at a full sync holding n
// elements: twice n, rounded up to a power of two. With a size the kernel keeps
// the map in its fixed-size hash (nft_hash) instead of the resizable rhashtable,
// and that matters for every commit that adds a `goto` element or rule: the
// kernel then validates the whole table, walking every element of every verdict
// map, and the rhashtable walk is the slow one. Measured with `nft` in a network
// namespace (kernel 6.18, docs/performance.md): one element added to a map of
// 100,000 commits in 42 ms (rhashtable) against 8.7 ms (sized). A map that
// fills up refuses the next element (ENFILE); Proxier.syncTable then syncs fully,
// which declares it larger. (Most Services are no element of these maps any
// more: the shared path and the Services without endpoints are plain-set
// elements, shared.go.)
func verdictMapSize(n int) uint32 {
	size := verdictMapSizeMin
	for size < 2*n {
		size *= 2
	}
	return uint32(size)
}

// sharedMapSizes counts the elements of each shared verdict map in frs (a key
// several owners render counts once per owner: an upper bound).
func sharedMapSizes(frs []*fragment) map[string]int {
	counts := map[string]int{}
	for _, fr := range frs {
		for _, s := range fr.sets {
			if s.kind == kindServiceKey || s.kind == kindPortKey {
				counts[s.name] = 0
			}
		}
	}
	for _, fr := range frs {
		for _, e := range fr.elems {
			set := e.set()
			if n, ok := counts[set]; ok {
				counts[set] = n + 1
			}
		}
	}
	return counts
}

// elemQueue queues every element once, as it goes: several owners may render the
// same one (see diff.resolveRefs) and the kernel refuses duplicates. It counts the
// owners of each.
type elemQueue struct {
	w    *elemWriter
	refs refCounts
	buf  []byte
}

func newElemQueue(b *batch, kinds map[string]setKind) *elemQueue {
	return &elemQueue{w: b.elemWriter(kinds, true), refs: refCounts{}}
}

func (q *elemQueue) put(es []elem) {
	for _, e := range es {
		// One map operation per element (1.4 million at 100,000 x 5): the count
		// of keys says whether the increment made a new one.
		n := len(q.refs)
		if q.refs[e.ref(&q.buf)]++; len(q.refs) > n {
			q.w.put(e)
		}
	}
}

// close queues what is left and returns how many owners each element has.
func (q *elemQueue) close() refCounts {
	q.w.close()
	return q.refs
}

// change is one owner's old and new fragment. elems, when set, is the element
// difference the render computed (renderServiceUpdate); the fragments' elements
// are then not compared.
type change struct {
	old, new *fragment
	elems    *elemDelta
}

// partial sends the difference of the given owners and deletes what earlier syncs
// left stale. next is the ruleset after the change (applied with changes folded in).
func (t *tableSync) partial(next *ruleset, changes []change) (int, error) {
	b, err := t.batch()
	if err != nil {
		return 0, err
	}
	live := map[string]bool{}
	for _, ch := range changes {
		if ch.new != nil {
			for _, c := range ch.new.chains {
				live[c.name] = true
			}
			for _, s := range ch.new.sets {
				live[s.name] = true
			}
		}
	}
	d := newDiff(t, live)
	for _, ch := range changes {
		d.add(ch.old, ch.new, ch.elems)
	}
	d.resolveRefs(t.refs)
	if d.empty() {
		t.applied = next
		return 0, nil
	}
	d.queue(b)
	if err := b.commit(); err != nil {
		t.applied = nil
		t.closeConn()
		return b.written, err
	}
	t.commits++
	for name := range d.deletedStale {
		delete(t.staleChains, name)
		delete(t.staleSets, name)
	}
	for _, n := range d.newStaleChains {
		t.staleChains[n] = true
	}
	for _, n := range d.newStaleSets {
		t.staleSets[n] = true
	}
	t.applied = next
	return b.written, nil
}

func isENOENT(err error) bool {
	return err != nil && (errors.Is(err, os.ErrNotExist) || fmt.Sprint(err) == "no such file or directory")
}

// update is one ServicePort's applied fragment and the one replacing it.
type update struct {
	name     state.ServicePortName
	old, new *fragment
}

// foldServices folds changed owners into the applied ruleset. It modifies applied in
// place: a failed sync forgets applied altogether, so nothing is lost.
func foldServices(applied *ruleset, node *fragment, updated []update) *ruleset {
	applied.setNode(node)
	for _, u := range updated {
		applied.put(u.name, u.old, u.new)
	}
	return applied
}
