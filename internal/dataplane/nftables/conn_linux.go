//go:build linux

package nftables

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
)

// nfConn is what a table sync uses of the kernel: operations that only queue
// messages, Flush to send them as one transaction, and the reads of the self-check
// (digest_linux.go). kernelConn (google/nftables to encode and read, kproxy's own
// batch sender, two reads google/nftables lacks) implements it; unit tests use the
// stateful fake in internal/testing/fakenft, which applies a Flush all or nothing
// as the kernel does.
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
	ListChainsOfTableFamily(family nftables.TableFamily) ([]*nftables.Chain, error)
	GetSetElements(s *nftables.Set) ([]nftables.SetElement, error)
	CloseLasting() error
	// GenID reads the namespace's ruleset generation (NFT_MSG_GETGEN).
	GenID() (uint32, error)
	// DumpRules calls each with every rule of the table: its chain and its
	// expressions as the kernel encodes them (NFTA_RULE_EXPRESSIONS).
	DumpRules(t *nftables.Table, each func(chain string, exprs []byte)) error
	// DumpSetElements calls each with every element of the set: its key, value
	// (Val, or VerdictData in a verdict map) and interval-end flag.
	DumpSetElements(s *nftables.Set, each func(e nftables.SetElement)) error
}

var _ nfConn = (*kernelConn)(nil)

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
