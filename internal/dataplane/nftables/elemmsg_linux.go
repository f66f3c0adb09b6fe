//go:build linux

package nftables

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Set element messages are most of a full sync's messages (400 elements each) and,
// through google/nftables, most of its garbage: a netlink.Attribute list and a
// marshalled copy per element and per nesting level. kernelConn encodes them
// itself, straight into the batch, byte for byte as google/nftables v0.3.0 does
// (TestElemMsgMatchesGoogleNftables), for the elements kproxy writes: a key, an
// interval end flag, and a verdict or a value. Anything else goes through
// google/nftables.

// SetAddElements queues an NFT_MSG_NEWSETELEM.
func (c *kernelConn) SetAddElements(s *nftables.Set, vals []nftables.SetElement) error {
	return c.elements(unix.NFT_MSG_NEWSETELEM, s, vals)
}

// SetDeleteElements queues an NFT_MSG_DELSETELEM.
func (c *kernelConn) SetDeleteElements(s *nftables.Set, vals []nftables.SetElement) error {
	return c.elements(unix.NFT_MSG_DELSETELEM, s, vals)
}

// elements writes the message after everything queued before it, or leaves it to
// google/nftables (which also says when a list is too long for one attribute).
func (c *kernelConn) elements(typ int, s *nftables.Set, vals []nftables.SetElement) error {
	if encodable(s, vals) {
		c.spill()
		var ok bool
		if c.scratch, ok = appendElemMsg(c.scratch[:0], s, vals); ok {
			c.tx.put(netlink.Message{
				Header: netlink.Header{Type: nftMsgType(typ), Flags: netlink.Request | netlink.Create},
				Data:   c.scratch,
			})
			return nil
		}
	}
	defer c.queued()
	if typ == unix.NFT_MSG_NEWSETELEM {
		return c.Conn.SetAddElements(s, vals)
	}
	return c.Conn.SetDeleteElements(s, vals)
}

// encodable says whether appendElemMsg encodes these elements.
func encodable(s *nftables.Set, vals []nftables.SetElement) bool {
	if s.Anonymous {
		return false // google/nftables refuses them
	}
	for _, v := range vals {
		if len(v.KeyEnd) > 0 || v.Comment != "" || (s.HasTimeout && v.Timeout != 0) {
			return false
		}
	}
	return true
}

// appendElemMsg appends the body of an element message: nfgenmsg, the set's name,
// id and table, and the list of elements; not ok if the list outgrows an
// attribute's 16-bit length.
func appendElemMsg(b []byte, s *nftables.Set, vals []nftables.SetElement) ([]byte, bool) {
	b = append(b, byte(s.Table.Family), unix.NFNETLINK_V0, 0, 0)
	b = appendStrAttr(b, unix.NFTA_SET_NAME, s.Name)
	b = appendU32Attr(b, unix.NFTA_LOOKUP_SET_ID, s.ID)
	b = appendStrAttr(b, unix.NFTA_SET_TABLE, s.Table.Name)
	list := len(b)
	b = beginNest(b, unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	for i, v := range vals {
		b = appendElem(b, uint16(i+1), v)
	}
	return endNest(b, list), len(b)-list <= 0xffff
}

func appendElem(b []byte, typ uint16, v nftables.SetElement) []byte {
	item := len(b)
	b = beginNest(b, typ)
	if v.IntervalEnd {
		b = appendU32Attr(b, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	b = appendValue(b, unix.NFTA_SET_ELEM_KEY, v.Key)
	switch {
	case v.VerdictData != nil:
		data := len(b)
		b = beginNest(b, unix.NFTA_SET_ELEM_DATA)
		verdict := len(b)
		b = beginNest(b, unix.NFTA_SET_ELEM_DATA) // NFTA_DATA_VERDICT, as google/nftables names it
		b = appendU32Attr(b, unix.NFTA_DATA_VALUE, uint32(v.VerdictData.Kind))
		if v.VerdictData.Chain != "" {
			b = appendStrAttr(b, unix.NFTA_SET_ELEM_DATA, v.VerdictData.Chain)
		}
		b = endNest(endNest(b, verdict), data)
	case len(v.Val) > 0:
		b = appendValue(b, unix.NFTA_SET_ELEM_DATA, v.Val)
	}
	return endNest(b, item)
}

// appendValue appends a nested NFTA_DATA_VALUE.
func appendValue(b []byte, typ uint16, val []byte) []byte {
	at := len(b)
	b = beginNest(b, typ)
	return endNest(appendAttr(b, unix.NFTA_DATA_VALUE, val), at)
}

func appendStrAttr(b []byte, typ uint16, s string) []byte {
	n := unix.NLA_HDRLEN + len(s) + 1
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	return append(b, make([]byte, nlAlign(n)-n+1)...)
}

// appendU32Attr appends a big-endian 32-bit attribute.
func appendU32Attr(b []byte, typ uint16, v uint32) []byte {
	b = binary.NativeEndian.AppendUint16(b, unix.NLA_HDRLEN+4)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint32(b, v)
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := unix.NLA_HDRLEN + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	return append(b, make([]byte, nlAlign(n)-n)...)
}

// beginNest appends a nested attribute's header; endNest sets its length.
func beginNest(b []byte, typ uint16) []byte {
	b = binary.NativeEndian.AppendUint16(b, 0)
	return binary.NativeEndian.AppendUint16(b, typ|unix.NLA_F_NESTED)
}

func endNest(b []byte, at int) []byte {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
	return b
}
