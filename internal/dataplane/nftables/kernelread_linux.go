//go:build linux

package nftables

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// kernelConn is the real kernel behind the nfConn seam. google/nftables encodes the
// transactions (the embedded Conn only queues: its Flush hands the messages to tx,
// which sends them: txsend_linux.go) and reads (reads, a lasting socket); the two
// reads google/nftables v0.3.0 lacks are sent on a netlink socket of their own: the
// ruleset generation (NFT_MSG_GETGEN) and one dump of every rule of a table (its
// GetRules needs a chain name: one request per chain).
type kernelConn struct {
	*nftables.Conn
	// ops counts operations queued since the last spill; queueErr is a spill's
	// error, for Flush.
	ops      int
	queueErr error
	// scratch is where element messages are encoded (elemmsg_linux.go).
	scratch []byte
	reads   *nftables.Conn
	tx      *txConn
	nsFD    int
	raw     *netlink.Conn
}

// openKernelConn opens the lasting connection of a table sync.
func openKernelConn(nsFD int) (nfConn, error) {
	reads, err := openConn(nsFD)
	if err != nil {
		return nil, err
	}
	tx := &txConn{nsFD: nsFD}
	queue, err := nftables.New(nftables.WithTestDial(tx.capture))
	if err != nil {
		_ = reads.CloseLasting()
		return nil, err
	}
	return &kernelConn{Conn: queue, reads: reads, tx: tx, nsFD: nsFD}, nil
}

func (c *kernelConn) ListTableOfFamily(name string, family nftables.TableFamily) (*nftables.Table, error) {
	return c.reads.ListTableOfFamily(name, family)
}

func (c *kernelConn) GetRules(t *nftables.Table, ch *nftables.Chain) ([]*nftables.Rule, error) {
	return c.reads.GetRules(t, ch)
}

func (c *kernelConn) ListChainsOfTableFamily(family nftables.TableFamily) ([]*nftables.Chain, error) {
	return c.reads.ListChainsOfTableFamily(family)
}

func (c *kernelConn) GetSetElements(s *nftables.Set) ([]nftables.SetElement, error) {
	return c.reads.GetSetElements(s)
}

func (c *kernelConn) rawConn() (*netlink.Conn, error) {
	if c.raw == nil {
		raw, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: c.nsFD})
		if err != nil {
			return nil, fmt.Errorf("nftables: open netlink socket: %w", err)
		}
		c.raw = raw
	}
	return c.raw, nil
}

// CloseLasting closes every socket.
func (c *kernelConn) CloseLasting() error {
	c.dropRaw()
	c.tx.close()
	return c.reads.CloseLasting()
}

// nfgenmsg is the header of every nf_tables message: family, version, resource id.
func nfgenmsg(fam nftables.TableFamily) []byte { return []byte{byte(fam), unix.NFNETLINK_V0, 0, 0} }

func nftMsgType(m int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | m)
}

// GenID returns the nf_tables ruleset generation of the namespace: every committed
// transaction of any table increments it.
func (c *kernelConn) GenID() (uint32, error) {
	raw, err := c.rawConn()
	if err != nil {
		return 0, err
	}
	msgs, err := raw.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC),
	})
	if err != nil {
		c.dropRaw()
		return 0, fmt.Errorf("nftables: read the ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return binary.BigEndian.Uint32(ad.Bytes()), nil
			}
		}
	}
	return 0, fmt.Errorf("nftables: the kernel's generation reply has no id")
}

// DumpRules reads every rule of the table in one dump and calls each with its
// chain and expressions exactly as the kernel encodes them.
func (c *kernelConn) DumpRules(t *nftables.Table, each func(chain string, exprs []byte)) error {
	raw, err := c.rawConn()
	if err != nil {
		return err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(t.Name + "\x00")}})
	if err != nil {
		return err
	}
	msgs, err := raw.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append(nfgenmsg(t.Family), attrs...),
	})
	if err != nil {
		c.dropRaw()
		return fmt.Errorf("nftables: dump the rules of table %s: %w", t.Name, err)
	}
	for _, m := range msgs {
		if m.Header.Type != nftMsgType(unix.NFT_MSG_NEWRULE) || len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return err
		}
		var chain string
		var exprs []byte
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			case unix.NFTA_RULE_EXPRESSIONS:
				exprs = ad.Bytes()
			}
		}
		if err := ad.Err(); err != nil {
			return err
		}
		each(chain, exprs)
	}
	return nil
}

// dropRaw closes the read socket after a failure; the next read opens a new one.
func (c *kernelConn) dropRaw() {
	if c.raw != nil {
		_ = c.raw.Close()
		c.raw = nil
	}
}

// DumpSetElements reads every element of a set in one dump and calls each with
// its key, value (data, or verdict of a verdict map) and interval-end flag. The
// slices point into the reply: each must not keep them.
func (c *kernelConn) DumpSetElements(s *nftables.Set, each func(e nftables.SetElement)) error {
	raw, err := c.rawConn()
	if err != nil {
		return err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(s.Table.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(s.Name + "\x00")},
	})
	if err != nil {
		return err
	}
	msgs, err := raw.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump},
		Data:   append(nfgenmsg(s.Table.Family), attrs...),
	})
	if err != nil {
		c.dropRaw()
		return fmt.Errorf("nftables: dump the elements of set %s: %w", s.Name, err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						nad.Nested(func(ead *netlink.AttributeDecoder) error {
							e, err := decodeElement(ead)
							if err == nil {
								each(e)
							}
							return err
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return err
		}
	}
	return nil
}

// decodeElement decodes one NFTA_LIST_ELEM of a set element dump.
func decodeElement(ad *netlink.AttributeDecoder) (nftables.SetElement, error) {
	var e nftables.SetElement
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			ad.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					if d.Type() == unix.NFTA_DATA_VALUE {
						e.Key = d.Bytes()
					}
				}
				return nil
			})
		case unix.NFTA_SET_ELEM_DATA:
			ad.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					switch d.Type() {
					case unix.NFTA_DATA_VALUE:
						e.Val = d.Bytes()
					case unix.NFTA_DATA_VERDICT:
						v, err := withVerdict(nftables.SetElement{Val: d.Bytes()})
						if err != nil {
							return err
						}
						e.VerdictData = v.VerdictData
					}
				}
				return nil
			})
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = ad.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
		}
	}
	return e, ad.Err()
}
