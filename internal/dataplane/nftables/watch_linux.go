//go:build linux

package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The self-check's event watch (digest_linux.go). nf_tables announces every
// committed transaction on the NFNLGRP_NFTABLES multicast group of the network
// namespace: one message per changed table, chain, rule, set, element batch,
// object or flowtable, each naming its table and family, then NEWGEN with the
// transaction's generation. The watch reads them on a socket of its own and keeps,
// per generation it saw announced, whether the transaction named one of kproxy's
// tables. A check that finds the generation moved asks it whether any of the
// generations since the gate touched kproxy; only then (or when the watch cannot
// tell: a dropped message, ENOBUFS, the watch not running) are the tables read back.
//
// google/nftables' Monitor is not used: it decodes every element of every message
// into allocated structs (a full sync of 10,000 Services announces tens of
// thousands) and ends on the first receive error; here only the table name is read.

// watchMaxTouched bounds the generations remembered as touching kproxy's tables;
// older ones are forgotten by moving the watch's base past them.
const watchMaxTouched = 1024

// watchWait bounds how long a check waits for the NEWGEN of the generation it read
// (the kernel bumps the generation before it sends the transaction's messages).
const watchWait = 500 * time.Millisecond

// watchRcvBuf is the watch socket's receive buffer: a burst beyond it is dropped
// and reported (ENOBUFS), and the next check reads back.
const watchRcvBuf = 8 << 20

// nftWatch follows the nf_tables announcements of one network namespace.
type nftWatch struct {
	conn *netlink.Conn
	// ours says whether a message of family fam naming table is about kproxy.
	ours func(fam byte, table string) bool

	mu sync.Mutex
	// Every generation g with base < g <= last was announced with every message of
	// its transaction; valid is false after a drop until the next NEWGEN.
	base, last uint32
	valid      bool
	// pending: a message of the transaction not yet closed by NEWGEN named kproxy.
	pending bool
	// touched lists the generations in (base, last] whose transaction named kproxy.
	touched []uint32
	// moved is closed and replaced at every NEWGEN and when the watch stops.
	moved   chan struct{}
	stopped bool
	// drops counts receive overflows (ENOBUFS), for tests.
	drops int
}

// startWatch subscribes to the announcements on a socket in network namespace nsFD,
// then reads the current generation with gen: every later transaction is announced
// on the socket.
func startWatch(nsFD int, ours func(byte, string) bool, gen func() (uint32, error)) (*nftWatch, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("nftables watch: open netlink socket: %w", err)
	}
	if err := setRcvBuf(conn, watchRcvBuf); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("nftables watch: receive buffer: %w", err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("nftables watch: join the nf_tables group: %w", err)
	}
	g, err := gen()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	w := &nftWatch{conn: conn, ours: ours, base: g, last: g, valid: true, moved: make(chan struct{})}
	go w.read()
	return w, nil
}

// setRcvBuf forces the socket's receive buffer (CAP_NET_ADMIN), else asks for it.
func setRcvBuf(c *netlink.Conn, n int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	}); err != nil {
		return err
	}
	return serr
}

func (w *nftWatch) read() {
	for {
		msgs, err := w.conn.Receive()
		w.mu.Lock()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				w.lost()
				w.mu.Unlock()
				continue
			}
			w.stopped, w.valid = true, false
			close(w.moved)
			w.mu.Unlock()
			return
		}
		for _, m := range msgs {
			w.note(m)
		}
		w.mu.Unlock()
	}
}

// lost records that announcements were dropped: nothing is known until the
// NEWGEN after the next one (this one's transaction may have lost messages); w.mu
// is held.
func (w *nftWatch) lost() {
	w.valid, w.pending, w.touched = false, false, nil
	w.drops++
}

// note records one announcement; w.mu is held.
func (w *nftWatch) note(m netlink.Message) {
	if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return
	}
	fam, name, gen, ok := decodeAnnouncement(m)
	if m.Header.Type&0xff != unix.NFT_MSG_NEWGEN {
		// A message without a table name counts as kproxy's: never skip unsafely.
		if !ok || w.ours(fam, name) {
			w.pending = true
		}
		return
	}
	touched := w.pending
	w.pending = false
	switch {
	case !ok:
		w.valid, w.touched = false, nil
		return
	case !w.valid:
		// The transaction's messages may have been dropped: known from gen on.
		w.base, w.last, w.valid, w.touched = gen, gen, true, nil
	case !after(gen, w.last):
		return // committed before the watch read its first generation
	case gen != w.last+1:
		// A generation without announcement: known from this one on.
		w.base, w.last, w.touched = gen-1, gen, nil
	default:
		w.last = gen
	}
	if touched {
		w.touched = append(w.touched, gen)
		if len(w.touched) > watchMaxTouched {
			w.base = w.touched[0]
			w.touched = w.touched[1:]
		}
	}
	close(w.moved)
	w.moved = make(chan struct{})
}

// decodeAnnouncement reads a message's family and its first attribute: the table's
// name in every object message, the generation in NEWGEN.
func decodeAnnouncement(m netlink.Message) (fam byte, table string, gen uint32, ok bool) {
	if len(m.Data) < 4 {
		return 0, "", 0, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return 0, "", 0, false
	}
	for ad.Next() {
		if ad.Type() != 1 { // NFTA_*_TABLE, NFTA_TABLE_NAME, NFTA_GEN_ID
			continue
		}
		if m.Header.Type&0xff == unix.NFT_MSG_NEWGEN {
			if b := ad.Bytes(); len(b) == 4 {
				return m.Data[0], "", binary.BigEndian.Uint32(b), true
			}
			return 0, "", 0, false
		}
		return m.Data[0], ad.String(), 0, ad.Err() == nil
	}
	return 0, "", 0, false
}

// after reports whether generation a comes after b (the counter wraps).
func after(a, b uint32) bool { return int32(a-b) > 0 }

// untouched reports whether every transaction of the generations in (from, to]
// was seen and none named kproxy's tables. It waits (at most watchWait) for the
// announcement of to; false whenever the watch cannot tell.
func (w *nftWatch) untouched(from, to uint32) bool {
	if w == nil {
		return false
	}
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if w.stopped || !w.valid || after(w.base, from) {
			w.mu.Unlock()
			return false
		}
		if !after(to, w.last) {
			for _, g := range w.touched {
				if after(g, from) && !after(g, to) {
					w.mu.Unlock()
					return false
				}
			}
			w.mu.Unlock()
			return true
		}
		moved := w.moved
		w.mu.Unlock()
		select {
		case <-moved:
		case <-deadline.C:
			return false
		}
	}
}

// running reports whether the watch still reads.
func (w *nftWatch) running() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.stopped
}

// close stops the watch; its reader ends with the socket.
func (w *nftWatch) close() {
	if w != nil {
		_ = w.conn.Close()
	}
}

// watchTables starts the event watch of p's namespace if it is not running. Table
// syncs on a fake kernel (tests) get none: checks read back.
func (p *Proxier) watchTables() {
	if p.noWatch || p.watch.running() {
		return
	}
	for _, t := range p.tables {
		if t.dial != nil {
			return
		}
	}
	ours := func(fam byte, table string) bool {
		return table == tableName && (fam == unix.AF_INET || fam == unix.AF_INET6)
	}
	w, err := startWatch(p.nsFD, ours, p.generation)
	if err != nil {
		p.watch = nil
		if !p.warned["watch"] {
			p.warned["watch"] = true
			p.log.Info("nftables change notifications unavailable; each check after another table's commit reads kproxy's tables back", "err", err)
		}
		return
	}
	p.watch = w
}
