//go:build linux

package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// txConn sends nf_tables transactions the way nft does: the whole batch in one
// write, an acknowledgement asked of its last message only, and whatever the kernel
// reports read back once the write returns (nf_tables processes a batch inside the
// sendmsg call, so every reply is queued by then; errors come whether asked for or
// not). google/nftables' Flush asks for an acknowledgement of every message, and an
// echo of every rule, and reads each with receives of its own: at 100,000 Services x
// 5 that is millions of replies the kernel builds and kproxy decodes.
//
// google/nftables still encodes the messages: its one way to hand them over is a
// test dial (WithTestDial), which capture implements. kernelConn hands them over
// every spillEvery operations, and capture lays them out at once in large byte
// chunks, which the collector does not scan: a full sync's batch never lives as
// millions of message objects.
type txConn struct {
	nsFD int
	sock *netlink.Conn
	// seq is the last sequence number used; replies name messages by it.
	seq uint32
	// The open batch: its encoded messages from its begin (sequence number
	// first) on, how many, and the header of the last one (send asks its
	// acknowledgement).
	chunks  [][]byte
	first   uint32
	msgs    int
	lastHdr []byte
}

// txChunk is the size of the batch's chunks (one write takes up to 1,024, the
// kernel's UIO_MAXIOV); tests make it small.
var txChunk = 4 << 20

// capture is the queueing connection's dial: google/nftables' Flush hands it the
// encoded messages (between a batch begin and end, which txConn writes itself),
// then reads a reply per message, which capture answers with none (io.EOF: nothing
// to read).
func (t *txConn) capture(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return nil, io.EOF
	}
	for _, m := range req {
		switch m.Header.Type {
		case unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_MSG_BATCH_END:
			continue
		}
		t.put(m)
	}
	return nil, nil
}

// batchMsg is a batch's begin or end: nfgenmsg with the subsystem as resource id.
func batchMsg(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

// put encodes one message into the batch, opened first if need be, numbered,
// with no echo and no acknowledgement asked (send asks one of the last).
func (t *txConn) put(m netlink.Message) {
	if t.msgs == 0 {
		t.first = t.seq + 1
		t.write(batchMsg(unix.NFNL_MSG_BATCH_BEGIN))
	}
	t.lastHdr = t.write(m)
}

// write appends one message to the last chunk (a new one if it does not fit) and
// returns its header.
func (t *txConn) write(m netlink.Message) []byte {
	size := nlAlign(unix.NLMSG_HDRLEN + len(m.Data))
	if len(t.chunks) == 0 || cap(t.chunks[len(t.chunks)-1])-len(t.chunks[len(t.chunks)-1]) < size {
		t.chunks = append(t.chunks, make([]byte, 0, max(txChunk, size)))
	}
	c := &t.chunks[len(t.chunks)-1]
	t.seq++
	at := len(*c)
	*c = encodeMsg(*c, m, t.seq)
	t.msgs++
	return (*c)[at : at+unix.NLMSG_HDRLEN]
}

// encodeMsg appends the message to b with sequence number seq, echo and
// acknowledgement flags cleared.
func encodeMsg(b []byte, m netlink.Message, seq uint32) []byte {
	n := unix.NLMSG_HDRLEN + len(m.Data)
	flags := m.Header.Flags &^ (netlink.Acknowledge | netlink.Echo)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.Header.Type))
	b = binary.NativeEndian.AppendUint16(b, uint16(flags))
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, m.Data...)
	return append(b, make([]byte, nlAlign(n)-n)...)
}

// discard drops the open batch.
func (t *txConn) discard() {
	t.chunks, t.msgs, t.lastHdr = nil, 0, nil
}

// open dials the transaction socket in the namespace: buffers for a full sync in one
// write, errors without the failed message's payload echoed (NETLINK_CAP_ACK), and
// the kernel's reason when it gives one (NETLINK_EXT_ACK).
func (t *txConn) open() (*netlink.Conn, error) {
	if t.sock != nil {
		return t.sock, nil
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: t.nsFD})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	err = errors.Join(largeBuffers(c), c.SetOption(netlink.CapAcknowledge, true),
		c.SetOption(netlink.ExtendedAcknowledge, true))
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("set up netlink socket: %w", err)
	}
	t.sock = c
	return c, nil
}

func (t *txConn) close() {
	if t.sock != nil {
		_ = t.sock.Close()
		t.sock = nil
	}
	t.discard()
}

// send writes the open batch, closed with its end, and reads what the kernel
// reported.
func (t *txConn) send() error {
	if t.msgs < 2 { // nothing but a begin
		t.discard()
		return nil
	}
	defer t.discard()
	c, err := t.open()
	if err != nil {
		return err
	}
	flags := binary.NativeEndian.Uint16(t.lastHdr[6:8])
	binary.NativeEndian.PutUint16(t.lastHdr[6:8], flags|uint16(netlink.Acknowledge))
	acked := binary.NativeEndian.Uint32(t.lastHdr[8:12])
	t.write(batchMsg(unix.NFNL_MSG_BATCH_END))
	bufs := t.chunks
	if len(bufs) > 1024 {
		return fmt.Errorf("the batch is too large (%d chunks of %d bytes)", len(bufs), txChunk)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	werr := raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), bufs, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err := errors.Join(werr, serr); err != nil {
		t.close() // replies of a half-sent batch must not meet the next one
		return fmt.Errorf("send the batch (%d messages): %w", t.msgs, err)
	}
	r := batchReplies{chunks: t.chunks, first: t.first, acked: acked, msgs: t.msgs}
	if err := drain(raw, r.add); err != nil {
		t.close()
		return fmt.Errorf("read the kernel's replies: %w", err)
	}
	return r.err()
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// drain reads every queued datagram without waiting and hands each to add.
func drain(raw interface {
	Read(func(uintptr) bool) error
}, add func([]byte) error) error {
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT)
			if rerr == nil && n > len(buf) {
				buf = make([]byte, n)
			}
			if rerr == nil {
				n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			}
			return true
		})
		switch {
		case err != nil:
			return err
		case errors.Is(rerr, unix.EAGAIN):
			return nil
		case errors.Is(rerr, unix.ENOBUFS):
			return fmt.Errorf("replies were lost (ENOBUFS): the transaction's outcome is unknown")
		case rerr != nil:
			return rerr
		}
		if err := add(buf[:n]); err != nil {
			return err
		}
	}
}

// batchReplies collects the kernel's replies to one batch: the errors of the
// messages it refused and the acknowledgement of the last one.
type batchReplies struct {
	chunks       [][]byte
	msgs         int
	first, acked uint32
	gotAck       bool
	errs         []error
	refused      int
}

// maxReported bounds the errors a failed batch reports; the rest are counted.
const maxReported = 3

func (r *batchReplies) add(b []byte) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < unix.NLMSG_HDRLEN || n > len(b) {
			return fmt.Errorf("malformed netlink reply (length %d of %d bytes)", n, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:6])
		flags := binary.NativeEndian.Uint16(b[6:8])
		if typ == unix.NLMSG_ERROR {
			r.nlError(b[unix.NLMSG_HDRLEN:n], flags)
		}
		b = b[min(nlAlign(n), len(b)):]
	}
	return nil
}

// nlError takes one NLMSG_ERROR: the errno, the header of the message it answers,
// and (NETLINK_EXT_ACK) the kernel's message.
func (r *batchReplies) nlError(p []byte, flags uint16) {
	if len(p) < 4+unix.NLMSG_HDRLEN {
		r.fail(fmt.Errorf("malformed netlink error reply"))
		return
	}
	errno := -int32(binary.NativeEndian.Uint32(p[0:4]))
	seq := binary.NativeEndian.Uint32(p[4+8 : 4+12])
	if errno == 0 {
		r.gotAck = r.gotAck || seq == r.acked
		return
	}
	var tlvs []byte
	if flags&unix.NLM_F_ACK_TLVS != 0 {
		off := 4 + unix.NLMSG_HDRLEN
		if flags&unix.NLM_F_CAPPED == 0 {
			off = 4 + int(binary.NativeEndian.Uint32(p[4:8]))
		}
		if off <= len(p) {
			tlvs = p[nlAlign(min(off, len(p))):]
		}
	}
	r.fail(&txError{what: r.describe(seq), errno: unix.Errno(errno), reason: extAckMessage(tlvs)})
}

func (r *batchReplies) fail(err error) {
	if r.refused++; len(r.errs) < maxReported {
		r.errs = append(r.errs, err)
	}
}

// describe names the message a reply answers: what it did, to which object.
func (r *batchReplies) describe(seq uint32) string {
	if seq == r.first {
		return "the commit" // the kernel answers a failed commit on the batch's header
	}
	for _, c := range r.chunks {
		for len(c) >= unix.NLMSG_HDRLEN {
			n := int(binary.NativeEndian.Uint32(c[0:4]))
			if binary.NativeEndian.Uint32(c[8:12]) == seq {
				return describeMsg(netlink.Message{
					Header: netlink.Header{Type: netlink.HeaderType(binary.NativeEndian.Uint16(c[4:6]))},
					Data:   c[unix.NLMSG_HDRLEN:n],
				})
			}
			c = c[nlAlign(n):]
		}
	}
	return fmt.Sprintf("message %d (not of this batch)", seq)
}

func (r *batchReplies) err() error {
	if r.refused > 0 {
		errs := r.errs
		if more := r.refused - len(r.errs); more > 0 {
			errs = append(errs, fmt.Errorf("and %d more refused", more))
		}
		return errors.Join(errs...)
	}
	if !r.gotAck {
		return fmt.Errorf("the kernel did not acknowledge the batch of %d messages", r.msgs)
	}
	return nil
}

// txError is a message of a batch the kernel refused. It unwraps to the errno.
type txError struct {
	what   string
	errno  unix.Errno
	reason string
}

func (e *txError) Error() string {
	s := e.what + ": " + e.errno.Error()
	if e.reason != "" {
		s += " (" + e.reason + ")"
	}
	return s
}

func (e *txError) Unwrap() error { return e.errno }

// extAckMessage is the NLMSGERR_ATTR_MSG of an extended acknowledgement, if any.
func extAckMessage(tlvs []byte) string {
	ad, err := netlink.NewAttributeDecoder(tlvs)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			return strings.TrimRight(ad.String(), "\x00\n")
		}
	}
	return ""
}

// msgKinds names the nf_tables messages kproxy sends and the attribute that holds
// the name of the object each acts on.
var msgKinds = map[uint16]struct {
	what string
	attr uint16
}{
	unix.NFT_MSG_NEWTABLE:   {"add table", unix.NFTA_TABLE_NAME},
	unix.NFT_MSG_DELTABLE:   {"delete table", unix.NFTA_TABLE_NAME},
	unix.NFT_MSG_NEWCHAIN:   {"add chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_DELCHAIN:   {"delete chain", unix.NFTA_CHAIN_NAME},
	unix.NFT_MSG_NEWRULE:    {"add rule to chain", unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_DELRULE:    {"delete rule of chain", unix.NFTA_RULE_CHAIN},
	unix.NFT_MSG_NEWSET:     {"add set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_DELSET:     {"delete set", unix.NFTA_SET_NAME},
	unix.NFT_MSG_NEWSETELEM: {"add elements to set", unix.NFTA_SET_ELEM_LIST_SET},
	unix.NFT_MSG_DELSETELEM: {"delete elements of set", unix.NFTA_SET_ELEM_LIST_SET},
}

// describeMsg says what one nf_tables message does: "add rule to chain svc-x".
func describeMsg(m netlink.Message) string {
	typ := uint16(m.Header.Type) & 0xff
	k, ok := msgKinds[typ]
	if !ok {
		return fmt.Sprintf("nf_tables message type %d", typ)
	}
	if len(m.Data) < 4 {
		return k.what
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return k.what
	}
	for ad.Next() {
		if ad.Type() == k.attr {
			return k.what + " " + strings.TrimRight(ad.String(), "\x00")
		}
	}
	return k.what
}

// spillEvery is how many queued operations kernelConn lets google/nftables hold
// before handing them to capture.
const spillEvery = 1024

// queued counts an operation queued on the embedded Conn and spills every
// spillEvery. A spill's error (an expression google/nftables cannot encode) is
// kept for Flush.
func (c *kernelConn) queued() {
	if c.ops++; c.ops >= spillEvery {
		c.spill()
	}
}

func (c *kernelConn) spill() {
	c.ops = 0
	c.fail(c.Conn.Flush())
}

// fail keeps the first error of queueing for Flush.
func (c *kernelConn) fail(err error) {
	if err != nil && c.queueErr == nil {
		c.queueErr = err
	}
}

// Flush sends everything queued since the last Flush as one transaction.
func (c *kernelConn) Flush() error {
	c.spill()
	if err := c.queueErr; err != nil {
		c.queueErr = nil
		c.tx.discard()
		return err
	}
	return c.tx.send()
}

func (c *kernelConn) AddTable(t *nftables.Table) *nftables.Table {
	defer c.queued()
	return c.Conn.AddTable(t)
}

func (c *kernelConn) DelTable(t *nftables.Table) {
	defer c.queued()
	c.Conn.DelTable(t)
}

func (c *kernelConn) AddChain(ch *nftables.Chain) *nftables.Chain {
	defer c.queued()
	return c.Conn.AddChain(ch)
}

func (c *kernelConn) FlushChain(ch *nftables.Chain) {
	defer c.queued()
	c.Conn.FlushChain(ch)
}

func (c *kernelConn) DelChain(ch *nftables.Chain) {
	defer c.queued()
	c.Conn.DelChain(ch)
}

func (c *kernelConn) AddRule(r *nftables.Rule) *nftables.Rule {
	defer c.queued()
	return c.Conn.AddRule(r)
}

func (c *kernelConn) AddSet(s *nftables.Set, vals []nftables.SetElement) error {
	defer c.queued()
	return c.Conn.AddSet(s, vals)
}

func (c *kernelConn) DelSet(s *nftables.Set) {
	defer c.queued()
	c.Conn.DelSet(s)
}

func (c *kernelConn) FlushSet(s *nftables.Set) {
	defer c.queued()
	c.Conn.FlushSet(s)
}
