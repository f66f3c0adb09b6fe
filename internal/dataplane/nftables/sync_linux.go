//go:build linux

package nftables

import (
	"errors"
	"fmt"
	"os"

	"kproxy.dev/kproxy/internal/state"
)

// tableSync keeps what kproxy last wrote to one family's table, so a sync sends only
// the difference and never lists the kernel's table on the hot path.
type tableSync struct {
	fam family
	// nsFD, when not 0, is the network namespace to program (tests).
	nsFD int
	// applied is nil when the kernel's content is unknown: the next sync is full.
	applied *ruleset
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
func (t *tableSync) forget() { t.applied, t.refs = nil, nil }

// full replaces the table with rs in one transaction.
func (t *tableSync) full(rs *ruleset) (int, error) {
	t.forget()
	b, err := t.batch()
	if err != nil {
		return 0, err
	}
	b.resetTable()
	frs := rs.fragmentsInOrder()
	t.kinds = map[string]setKind{}
	sizes := sharedMapSizes(frs)
	for _, fr := range frs {
		for _, s := range fr.sets {
			t.kinds[s.name] = s.kind
			if n, ok := sizes[s.name]; ok {
				sized := *s
				sized.size = verdictMapSize(n)
				s = &sized
			}
			b.addSet(s)
		}
		for _, c := range fr.chains {
			b.addChain(c)
		}
	}
	for _, fr := range frs {
		for _, c := range fr.chains {
			b.addRules(c)
		}
	}
	t.refs = queueElems(b, t.kinds, frs, rs.rules)
	if err := b.commit(); err != nil {
		t.closeConn()
		return b.written, err
	}
	t.commits++
	t.applied = rs
	t.staleChains, t.staleSets = map[string]bool{}, map[string]bool{}
	return b.written, nil
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

// queueElems queues every element once, as it goes: several owners may render the
// same one (see diff.resolveRefs) and the kernel refuses duplicates. It returns how
// many owners each key has; size is about the number of elements.
func queueElems(b *batch, kinds map[string]setKind, frs []*fragment, size int) refCounts {
	refs := make(refCounts, size)
	var buf []byte
	w := b.elemWriter(kinds, true)
	for _, fr := range frs {
		for _, e := range fr.elems {
			k := e.ref(&buf)
			if refs[k]++; refs[k] == 1 {
				w.put(e)
			}
		}
	}
	w.close()
	return refs
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

// foldServices folds changed owners into the applied ruleset. It modifies applied in
// place: a failed sync forgets applied altogether, so nothing is lost.
func foldServices(applied *ruleset, node *fragment, updated map[state.ServicePortName]*fragment) *ruleset {
	applied.setNode(node)
	for n, fr := range updated {
		applied.put(n, fr)
	}
	return applied
}
