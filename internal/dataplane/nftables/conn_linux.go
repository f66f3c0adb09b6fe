//go:build linux

package nftables

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
)

// nfConn is the slice of *nftables.Conn a table sync uses: operations that only
// queue messages, Flush to send them as one transaction, and the two reads of the
// cheap self-check. *nftables.Conn implements it; unit tests use the stateful fake in
// internal/testing/fakenft, which applies a Flush all or nothing as the kernel does.
// SetAddElements and SetDeleteElements must not keep vals: elemWriter reuses it.
type nfConn interface {
	AddTable(t *nftables.Table) *nftables.Table
	DelTable(t *nftables.Table)
	AddChain(c *nftables.Chain) *nftables.Chain
	FlushChain(c *nftables.Chain)
	DelChain(c *nftables.Chain)
	AddRule(r *nftables.Rule) *nftables.Rule
	AddSet(s *nftables.Set, vals []nftables.SetElement) error
	DelSet(s *nftables.Set)
	FlushSet(s *nftables.Set)
	SetAddElements(s *nftables.Set, vals []nftables.SetElement) error
	SetDeleteElements(s *nftables.Set, vals []nftables.SetElement) error
	Flush() error
	ListTableOfFamily(name string, family nftables.TableFamily) (*nftables.Table, error)
	GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error)
	GetSetElements(s *nftables.Set) ([]nftables.SetElement, error)
	CloseLasting() error
}

var _ nfConn = (*nftables.Conn)(nil)

// dialer opens the connection a table sync keeps; nil means a netlink socket in the
// table sync's network namespace (openConn).
type dialer func() (nfConn, error)

// useConns makes every table sync of p open its connection with dial (tests: a
// fake kernel).
func (p *Proxier) useConns(dial dialer) {
	for _, t := range p.tables {
		t.dial = dial
	}
}

// deleteTables removes both of p's tables through each table sync's connection
// opener (so tests on a fake kernel clean up the fake); missing tables are fine.
// Each delete runs on a connection of its own, closed afterwards, as the
// stand-alone cleanup does.
func (p *Proxier) deleteTables() error {
	var errs []error
	for _, t := range p.tables {
		c, err := t.open()
		if err != nil {
			return fmt.Errorf("nftables: open netlink socket: %w", err)
		}
		b := batchOn(t.fam, c)
		b.resetTable() // creates the table if missing, so the delete cannot fail
		b.conn.DelTable(b.table)
		if err := b.commit(); err != nil {
			errs = append(errs, err)
		}
		_ = c.CloseLasting()
	}
	return errors.Join(errs...)
}
