//go:build linux

package nftables

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// watchTestbed is a testbed whose every sync runs the self-check, with a Service
// on the shared path and one with chains of its own, synced once.
func watchTestbed(t *testing.T) (*testbed, *state.Snapshot, *spec) {
	tb := newTestbed(t)
	tb.p.core = dataplane.NewCore(tb.p.Proxier, dataplane.CoreOptions{CheckInterval: time.Nanosecond})
	web := &spec{name: "web", clusterIP: "10.96.0.10", port: 80}
	sticky := &spec{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 600 * time.Second}
	snap := snapshotOf(map[*spec][]state.Endpoint{web: backendEndpoints(), sticky: backendEndpoints()})
	tb.sync(t, snap)
	if !tb.p.watch.running() {
		t.Fatal("no event watch after the first sync")
	}
	return tb, snap, web
}

// checkAfter runs nft in the proxy namespace, then a sync (which runs the check),
// and returns the check's result.
func checkAfter(t *testing.T, tb *testbed, snap *state.Snapshot, script string) (string, dataplane.SyncStats) {
	t.Helper()
	tb.proxy.exec(t, "nft", script)
	before := checks(tb.p.Proxier)
	st := tb.sync(t, snap)
	after := checks(tb.p.Proxier)
	var got []string
	for r, n := range after {
		if n != before[r] {
			got = append(got, fmt.Sprintf("%s+%d", r, n-before[r]))
		}
	}
	if len(got) != 1 || !strings.HasSuffix(got[0], "+1") {
		t.Fatalf("after %q: checks moved %v, want one check", script, got)
	}
	return strings.TrimSuffix(got[0], "+1"), st
}

// Commits to other tables of the namespace, of every kind of object, are told
// apart from kproxy's by the nf_tables announcements: the check reads nothing back
// (result other-tables, not verified) and applies nothing; also after kproxy's
// own partial sync. A commit that touches kproxy's table, alone or together with
// another table, is still read back and repaired.
func TestKernelWatchSkipsOtherTables(t *testing.T) {
	tb, snap, web := watchTestbed(t)
	for _, script := range []string{
		"add table ip other",
		"add chain ip other c { type filter hook input priority 0 ; }",
		"add rule ip other c tcp dport 22 accept",
		"add set ip other s { type ipv4_addr ; }; add element ip other s { 192.0.2.1, 192.0.2.2 }",
		"delete element ip other s { 192.0.2.1 }",
		"add table inet kproxy", // kproxy's name, another family
		"add table ip6 kproxy2",
		"delete table ip other",
	} {
		if r, st := checkAfter(t, tb, snap, script); r != "other-tables" || !st.Skipped {
			t.Fatalf("after %q: check %s, sync %+v; want other-tables and the sync skipped", script, r, st)
		}
	}
	// kproxy's own partial sync, then another table's commit.
	snap = withEndpoints(snap, map[state.ServicePortName][]state.Endpoint{web.portName(): backendEndpoints()[:2]})
	if st := tb.sync(t, snap, web.portName()); st.Full || st.Skipped {
		t.Fatalf("endpoint change: %+v, want a partial sync", st)
	}
	if r, st := checkAfter(t, tb, snap, "add table ip other"); r != "other-tables" || !st.Skipped {
		t.Fatalf("after a partial sync: check %s, sync %+v", r, st)
	}
	// kproxy's table damaged, alone and in one transaction with another table.
	for _, script := range []string{
		"flush set ip kproxy pick-ips",
		"add table ip other2; flush chain ip kproxy nat-output",
	} {
		r, st := checkAfter(t, tb, snap, script)
		if r != "damaged" || !st.Full {
			t.Fatalf("after %q: check %s, sync %+v; want damaged and a full sync", script, r, st)
		}
		if got, err := dialIdentity(t, tb.proxy, "10.96.0.10:80"); err != nil || !strings.HasSuffix(got, ":8080") {
			t.Fatalf("after the repair: %q, %v", got, err)
		}
	}
	// The repair's own commits are not taken for damage.
	if r, st := checkAfter(t, tb, snap, "add table ip other3"); r != "other-tables" || !st.Skipped {
		t.Fatalf("after the repair: check %s, sync %+v", r, st)
	}
}

// When the watch loses announcements (its receive buffer overflows: ENOBUFS) or
// stops, the check cannot tell whose commits moved the generation and reads
// kproxy's tables back; a stopped watch is restarted by the check and serves the
// next one.
func TestKernelWatchLostFallsBackToReadBack(t *testing.T) {
	t.Run("overflow", func(t *testing.T) {
		tb, snap, _ := watchTestbed(t)
		// The kernel doubles it; a few element messages fill it.
		if err := setRcvBuf(tb.p.watch.conn, 4096); err != nil {
			t.Fatal(err)
		}
		if r, _ := checkAfter(t, tb, snap, "add table ip other"); r != "other-tables" {
			t.Fatalf("before the overflow: check %s", r)
		}
		w := tb.p.watch
		var elems []string
		for i := range 2000 {
			elems = append(elems, fmt.Sprintf("10.%d.%d.1", i/250, i%250))
		}
		// The reader blocks on the lock while the kernel announces 2,000 elements.
		w.mu.Lock()
		tb.proxy.exec(t, "nft", "add set ip other s { type ipv4_addr ; }; add element ip other s { "+strings.Join(elems, ", ")+" }")
		w.mu.Unlock()
		r, st := checkAfter(t, tb, snap, "add table ip other2")
		w.mu.Lock()
		drops := w.drops
		w.mu.Unlock()
		if drops == 0 {
			t.Fatal("the watch's buffer did not overflow: the test proves nothing")
		}
		if r != "verified" || !st.Skipped {
			t.Fatalf("after the overflow: check %s, sync %+v; want verified (read back)", r, st)
		}
		if r, _ := checkAfter(t, tb, snap, "add table ip other3"); r != "other-tables" {
			t.Fatalf("after the read-back: check %s, want the watch trusted again", r)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		tb, snap, _ := watchTestbed(t)
		w := tb.p.watch
		w.close()
		for w.running() {
			time.Sleep(time.Millisecond)
		}
		if r, st := checkAfter(t, tb, snap, "add table ip other"); r != "verified" || !st.Skipped {
			t.Fatalf("watch stopped: check %s, sync %+v; want verified (read back)", r, st)
		}
		if tb.p.watch == w || !tb.p.watch.running() {
			t.Fatal("the check did not restart the watch")
		}
		if r, _ := checkAfter(t, tb, snap, "add table ip other2"); r != "other-tables" {
			t.Fatalf("restarted watch: check %s", r)
		}
		// Damage while the watch was down is still found.
		tb.p.watch.close()
		for tb.p.watch.running() {
			time.Sleep(time.Millisecond)
		}
		if r, st := checkAfter(t, tb, snap, "flush set ip kproxy pick-ips"); r != "damaged" || !st.Full {
			t.Fatalf("damage with the watch down: check %s, sync %+v", r, st)
		}
	})
}

// announce builds an nf_tables announcement: an object message naming table (no
// name when table is ""), or NEWGEN with gen.
func announce(t *testing.T, msg int, fam byte, table string, gen uint32) netlink.Message {
	t.Helper()
	var attrs []netlink.Attribute
	switch {
	case msg == unix.NFT_MSG_NEWGEN:
		attrs = []netlink.Attribute{{Type: unix.NFTA_GEN_ID, Data: binary.BigEndian.AppendUint32(nil, gen)}}
	case table != "":
		attrs = []netlink.Attribute{{Type: 1, Data: []byte(table + "\x00")}}
	}
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return netlink.Message{Header: netlink.Header{Type: nftMsgType(msg)}, Data: append([]byte{fam, 0, 0, 0}, b...)}
}

// The watch's bookkeeping, message by message: which generation ranges it can
// vouch for after other tables' commits, kproxy's, a message without a table name,
// a generation never announced, and dropped messages.
func TestWatchAnswers(t *testing.T) {
	w := &nftWatch{base: 10, last: 10, valid: true, moved: make(chan struct{}),
		ours: func(fam byte, table string) bool { return fam == unix.AF_INET && table == tableName }}
	gen := func(g uint32, msgs ...netlink.Message) {
		for _, m := range msgs {
			w.note(m)
		}
		w.note(announce(t, unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, "", g))
	}
	want := func(from, to uint32, ok bool) {
		t.Helper()
		if got := w.untouched(from, to); got != ok {
			t.Fatalf("untouched(%d, %d) = %v, want %v (watch %d..%d valid %v touched %v)",
				from, to, got, ok, w.base, w.last, w.valid, w.touched)
		}
	}
	gen(11, announce(t, unix.NFT_MSG_NEWSETELEM, unix.AF_INET, "other", 0),
		announce(t, unix.NFT_MSG_NEWTABLE, unix.AF_INET6, "other", 0),
		announce(t, unix.NFT_MSG_NEWCHAIN, unix.AF_INET, "kproxy-not", 0),
		announce(t, unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, tableName, 0))
	want(10, 11, true)
	gen(12, announce(t, unix.NFT_MSG_DELRULE, unix.AF_INET, tableName, 0))
	want(10, 12, false)
	want(11, 12, false)
	want(12, 12, true)
	want(9, 11, false) // before the watch
	gen(13, announce(t, unix.NFT_MSG_NEWSET, unix.AF_INET, "", 0))
	want(12, 13, false) // no table name: counted as kproxy's
	gen(15)             // 14 never announced
	want(13, 15, false)
	want(14, 15, true)
	gen(16, announce(t, unix.NFT_MSG_NEWSETELEM, unix.AF_INET, "other", 0))
	w.lost() // the rest of 17's messages (kproxy's, say) were dropped
	gen(17, announce(t, unix.NFT_MSG_NEWSETELEM, unix.AF_INET, "other", 0))
	want(16, 17, false)
	want(15, 16, false)
	gen(18)
	want(17, 18, true)
}
