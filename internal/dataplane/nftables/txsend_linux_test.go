//go:build linux

package nftables

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func txTestConn(t *testing.T) (*kernelConn, *netns) {
	t.Helper()
	requireRoot(t)
	ns := newNetns(t, "tx")
	c, err := openKernelConn(ns.fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseLasting() })
	return c.(*kernelConn), ns
}

func txTable() *nftables.Table {
	return &nftables.Table{Name: "txtest", Family: nftables.TableFamilyIPv4}
}

func acceptRule(tbl *nftables.Table, chain string) *nftables.Rule {
	return &nftables.Rule{Table: tbl, Chain: &nftables.Chain{Name: chain, Table: tbl},
		Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}}
}

// A batch the kernel takes is applied and acknowledged: its rules are in the
// kernel, and the same connection sends the next batch. The batches are larger
// than a spill and than a chunk (made small here), so they are sent from many.
func TestTransactionApplied(t *testing.T) {
	c, ns := txTestConn(t)
	defer func(n int) { txChunk = n }(txChunk)
	txChunk = 4096
	tbl := txTable()
	for round := range 2 {
		c.AddTable(tbl)
		c.AddChain(&nftables.Chain{Name: fmt.Sprintf("c%d", round), Table: tbl})
		for range 3 * spillEvery {
			c.AddRule(acceptRule(tbl, fmt.Sprintf("c%d", round)))
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	for _, chain := range []string{"c0", "c1"} {
		if n := strings.Count(ns.exec(t, "nft", "list", "chain", "ip", "txtest", chain), "accept"); n != 3*spillEvery {
			t.Errorf("chain %s holds %d rules, want %d", chain, n, 3*spillEvery)
		}
	}
}

// A refused batch changes nothing, and its error names the message the kernel
// refused, what it acted on and why (errno, unwrappable), bounded to a few.
func TestTransactionRefusedNamesTheMessage(t *testing.T) {
	c, ns := txTestConn(t)
	tbl := txTable()
	c.AddTable(tbl)
	c.AddChain(&nftables.Chain{Name: "real", Table: tbl})
	c.AddRule(acceptRule(tbl, "real"))
	for i := range 5 {
		c.AddRule(acceptRule(tbl, fmt.Sprintf("missing-%d", i)))
	}
	err := c.Flush()
	if err == nil {
		t.Fatal("a rule in a missing chain was taken")
	}
	msg := err.Error()
	t.Logf("refused: %v", err)
	for _, want := range []string{"add rule to chain missing-0: no such file or directory", "and 2 more refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v does not unwrap to ENOENT", err)
	}
	if out := ns.exec(t, "nft", "list", "tables"); strings.Contains(out, "txtest") {
		t.Errorf("the refused batch left its table behind:\n%s", out)
	}
	// The connection still works after a refusal.
	c.AddTable(tbl)
	if err := c.Flush(); err != nil {
		t.Fatalf("after a refused batch: %v", err)
	}
}

// Element messages, written straight into the batch, come after the operations
// google/nftables still queues: a set created in the same batch takes them.
func TestTransactionKeepsOrderAcrossEncoders(t *testing.T) {
	c, ns := txTestConn(t)
	tbl := txTable()
	c.AddTable(tbl)
	set := &nftables.Set{Table: tbl, Name: "addrs", KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(set, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAddElements(set, []nftables.SetElement{{Key: []byte{10, 0, 0, 1}}, {Key: []byte{10, 0, 0, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	out := ns.exec(t, "nft", "list", "set", "ip", "txtest", "addrs")
	for _, want := range []string{"10.0.0.1", "10.0.0.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("set addrs lacks %s:\n%s", want, out)
		}
	}
}
