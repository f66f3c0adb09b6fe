//go:build linux

package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batch collects one netlink transaction for one family's table. Its methods only
// queue messages; commit sends them as one nf_tables batch.
type batch struct {
	conn  nfConn
	fam   family
	table *nftables.Table
	sets  map[string]*nftables.Set
	// written counts rules and elements queued, for SyncStats.Written.
	written int
	err     error
}

// openConn opens a netlink connection with buffers large enough for a full sync's
// reads.
func openConn(nsFD int) (*nftables.Conn, error) {
	return nftables.New(append(nsOptions(nsFD), nftables.AsLasting(), nftables.WithSockOptions(largeBuffers))...)
}

// largeBuffers sizes a netlink socket's buffers for a full sync in one batch (the
// kernel takes a batch in one message) and for the largest dump.
func largeBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1<<30); e != nil {
				serr = e
			}
		}
	})
	return errors.Join(err, serr)
}

func nsOptions(nsFD int) []nftables.ConnOption {
	if nsFD == 0 {
		return nil
	}
	return []nftables.ConnOption{nftables.WithNetNSFd(nsFD)}
}

// newBatch opens a connection of its own, closed by close (one-off transactions).
func newBatch(f family, nsFD int) (*batch, error) {
	conn, err := openKernelConn(nsFD)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
	}
	return batchOn(f, conn), nil
}

// batchOn queues a transaction on an open connection the caller keeps.
func batchOn(f family, conn nfConn) *batch {
	tf := nftables.TableFamilyIPv4
	if f.ipv6 {
		tf = nftables.TableFamilyIPv6
	}
	return &batch{conn: conn, fam: f, table: &nftables.Table{Name: tableName, Family: tf},
		sets: map[string]*nftables.Set{}}
}

func (b *batch) fail(err error) {
	if b.err == nil && err != nil {
		b.err = err
	}
}

// resetTable deletes the table if it exists and creates it empty.
func (b *batch) resetTable() {
	b.conn.AddTable(b.table)
	b.conn.DelTable(b.table)
	b.conn.AddTable(b.table)
}

func (b *batch) nfSet(s *set) *nftables.Set {
	if ns, ok := b.sets[s.name]; ok {
		return ns
	}
	ns := &nftables.Set{Table: b.table, Name: s.name, Size: s.size}
	addrType := nftables.TypeIPAddr
	if b.fam.ipv6 {
		addrType = nftables.TypeIP6Addr
	}
	switch s.kind {
	case kindServiceKey:
		ns.KeyType, _ = nftables.ConcatSetType(addrType, nftables.TypeInetProto, nftables.TypeInetService)
		ns.Concatenation, ns.IsMap, ns.DataType = true, true, nftables.TypeVerdict
	case kindPortKey:
		ns.KeyType, _ = nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		ns.Concatenation, ns.IsMap, ns.DataType = true, true, nftables.TypeVerdict
	case kindAddrSet:
		ns.KeyType = addrType
	case kindIndexMap:
		// numgen and jhash write host-order integers; say so for nft to print them.
		ns.KeyType, ns.IsMap, ns.DataType = nftables.TypeMark, true, nftables.TypeVerdict
		ns.KeyByteOrder = binaryutil.NativeEndian
	case kindServiceSet:
		ns.KeyType, _ = nftables.ConcatSetType(addrType, nftables.TypeInetProto, nftables.TypeInetService)
		ns.Concatenation = true
	case kindPortSet:
		ns.KeyType, _ = nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		ns.Concatenation = true
	case kindSlotMap:
		ns.KeyType, _ = nftables.ConcatSetType(addrType, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
		ns.DataType, _ = nftables.ConcatSetType(addrType, nftables.TypeInetService)
		ns.Concatenation, ns.IsMap = true, true
	case kindPortSlotMap:
		ns.KeyType, _ = nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeMark)
		ns.DataType, _ = nftables.ConcatSetType(addrType, nftables.TypeInetService)
		ns.Concatenation, ns.IsMap = true, true
	case kindPairSet:
		ns.KeyType, _ = nftables.ConcatSetType(addrType, addrType)
		ns.Concatenation = true
	case kindRangeSet:
		ns.KeyType, ns.Interval = addrType, true
	case kindAffinity:
		ns.KeyType, ns.Dynamic, ns.HasTimeout = addrType, true, true
		ns.Timeout = time.Duration(s.timeout) * time.Second
		ns.Size = 65535 // a dynamic set of size 0 would take no element
	}
	b.sets[s.name] = ns
	return ns
}

// setRef names a set that exists in the kernel already, for element operations.
func (b *batch) setRef(name string, kind setKind) *nftables.Set {
	return b.nfSet(&set{name: name, kind: kind})
}

func (b *batch) addSet(s *set) {
	b.fail(b.conn.AddSet(b.nfSet(s), nil))
}

func (b *batch) delSet(name string) {
	b.conn.DelSet(&nftables.Set{Table: b.table, Name: name})
}

func (b *batch) flushSet(name string) {
	b.conn.FlushSet(&nftables.Set{Table: b.table, Name: name})
}

func (b *batch) chainRef(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: b.table}
}

func (b *batch) addChain(c *chain) {
	b.conn.AddChain(b.nfChain(c))
}

// nfChain is the chain as google/nftables declares it (and lists it).
func (b *batch) nfChain(c *chain) *nftables.Chain {
	nc := b.chainRef(c.name)
	if c.base != nil {
		hooks := map[string]*nftables.ChainHook{"prerouting": nftables.ChainHookPrerouting,
			"input": nftables.ChainHookInput, "forward": nftables.ChainHookForward,
			"output": nftables.ChainHookOutput, "postrouting": nftables.ChainHookPostrouting}
		nc.Hooknum = hooks[c.base.hook]
		nc.Type = nftables.ChainType(c.base.chainType)
		prio := nftables.ChainPriority(c.base.priority)
		nc.Priority = &prio
		accept := nftables.ChainPolicyAccept
		nc.Policy = &accept
	}
	return nc
}

func (b *batch) flushChain(name string) { b.conn.FlushChain(b.chainRef(name)) }
func (b *batch) delChain(name string)   { b.conn.DelChain(b.chainRef(name)) }

func (b *batch) addRules(c *chain) {
	ref := b.chainRef(c.name)
	for _, r := range c.rules {
		exprs, err := ruleExprs(r)
		if err != nil {
			b.fail(fmt.Errorf("chain %s: %w", c.name, err))
			continue
		}
		b.conn.AddRule(&nftables.Rule{Table: b.table, Chain: ref, Exprs: exprs})
		b.written++
	}
}

// elemChunk keeps one element message under the 64 KiB a netlink attribute holds.
const elemChunk = 400

// elemWriter queues element messages as elements come, elemChunk per message and
// set, reusing one buffer per set: a full sync of 10,000 Services never holds a
// second copy of its ~100,000 elements (as library structures) beside the model.
type elemWriter struct {
	b       *batch
	kinds   map[string]setKind
	add     bool
	pending map[string]*[]nftables.SetElement
	// order is the sets in first-use order, so messages come out in a stable order.
	order []string
}

func (b *batch) elemWriter(kinds map[string]setKind, add bool) *elemWriter {
	return &elemWriter{b: b, kinds: kinds, add: add, pending: map[string]*[]nftables.SetElement{}}
}

// put queues e (and an interval's end element).
func (w *elemWriter) put(e elem) {
	ne, err := w.b.nfElem(e)
	if err != nil {
		w.b.fail(err)
		return
	}
	set := e.set()
	list := w.pending[set]
	if list == nil {
		w.order = append(w.order, set)
		l := make([]nftables.SetElement, 0, elemChunk+1)
		list = &l
		w.pending[set] = list
	}
	*list = append(*list, ne)
	if end, ok := intervalEnd(e); ok {
		*list = append(*list, end)
	}
	if len(*list) >= elemChunk {
		w.send(set, *list)
		*list = (*list)[:0]
	}
}

// send queues one message; the library marshals list at once, so it can be reused.
func (w *elemWriter) send(set string, list []nftables.SetElement) {
	if len(list) == 0 {
		return
	}
	ref := w.b.setRef(set, w.kinds[set])
	if w.add {
		w.b.fail(w.b.conn.SetAddElements(ref, list))
	} else {
		w.b.fail(w.b.conn.SetDeleteElements(ref, list))
	}
	w.b.written += len(list)
}

// close queues what is left.
func (w *elemWriter) close() {
	for _, set := range w.order {
		w.send(set, *w.pending[set])
		*w.pending[set] = nil
	}
}

// elems adds or deletes elements, grouped per set.
func (b *batch) elems(kinds map[string]setKind, es []elem, add bool) {
	w := b.elemWriter(kinds, add)
	for _, e := range es {
		w.put(e)
	}
	w.close()
}

func (b *batch) nfElem(e elem) (nftables.SetElement, error) {
	var key []byte
	switch a := e.addr(); {
	case e.proto != l4None:
		if a.IsValid() {
			key = append(key, a.AsSlice()...)
		}
		key = append(key, protoNumbers[e.proto.String()], 0, 0, 0)
		key = binary.BigEndian.AppendUint16(key, e.port)
		key = append(key, 0, 0)
		if e.slot {
			key = append(key, hostU32(e.index)...)
		}
	case e.pair().IsValid():
		key = append(a.AsSlice(), e.pair().AsSlice()...)
	case a.IsValid():
		key = a.AsSlice()
	default:
		key = hostU32(e.index)
	}
	ne := nftables.SetElement{Key: key}
	if to := e.to(); to.IsValid() {
		ne.Val = binary.BigEndian.AppendUint16(to.Addr().AsSlice(), to.Port())
		ne.Val = append(ne.Val, 0, 0)
	}
	if vt := e.verdict(); vt != "" {
		kind, chainName, _ := strings.Cut(vt, " ")
		v, ok := verdictExpr(verdict{kind: kind, chain: chainName}).(*expr.Verdict)
		if !ok {
			return ne, fmt.Errorf("element %s: bad verdict %q", e.key(), vt)
		}
		ne.VerdictData = v
	}
	return ne, nil
}

// intervalEnd is the closing element of an interval: the kernel stores [start,
// end+1) as two elements. A range reaching the family's last address has none.
func intervalEnd(e elem) (nftables.SetElement, bool) {
	if !e.end().IsValid() || !e.end().Next().IsValid() {
		return nftables.SetElement{}, false
	}
	return nftables.SetElement{Key: e.end().Next().AsSlice(), IntervalEnd: true}, true
}

// commit sends the batch as one transaction; nothing is sent if queuing failed.
// commit sends the batch and waits for the kernel's acks. It leaves the connection
// open: see tableSync.conn.
func (b *batch) commit() error {
	if b.err != nil {
		return b.err
	}
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("nftables transaction on table %s: %w", b.fam.table(), err)
	}
	return nil
}

// queue turns a diff into batch operations, in an order the kernel accepts: objects
// exist before anything refers to them, and go only after nothing does.
func (d *diff) queue(b *batch) {
	for _, s := range d.addSets {
		b.addSet(s)
	}
	for _, c := range d.addChains {
		b.addChain(c)
	}
	sortElems(d.delElems)
	b.elems(d.kinds, d.delElems, false)
	for _, name := range d.flushChains {
		b.flushChain(name)
	}
	for _, c := range d.ruleChains {
		b.addRules(c)
	}
	sortElems(d.addElems)
	b.elems(d.kinds, d.addElems, true)
	for _, name := range d.newStaleChains {
		b.flushChain(name)
	}
	for _, name := range d.newStaleSets {
		b.flushSet(name)
	}
	for _, name := range d.deleteChains {
		b.delChain(name)
	}
	for _, name := range d.deleteSets {
		b.delSet(name)
	}
}
