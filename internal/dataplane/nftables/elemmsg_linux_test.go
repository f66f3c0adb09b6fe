//go:build linux

package nftables

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// googleElemMsg is the element message google/nftables encodes for the elements.
func googleElemMsg(t *testing.T, s *nftables.Set, vals []nftables.SetElement, add bool) []byte {
	t.Helper()
	var got []byte
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		for _, m := range req {
			if typ := uint16(m.Header.Type) & 0xff; typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM {
				got = m.Data
			}
		}
		if req == nil {
			return nil, io.EOF
		}
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if add {
		err = c.SetAddElements(s, vals)
	} else {
		err = c.SetDeleteElements(s, vals)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

// kproxy's element messages are google/nftables' byte for byte, for every kind of
// element kproxy writes.
func TestElemMsgMatchesGoogleNftables(t *testing.T) {
	v4 := &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4}
	v6 := &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv6}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: "svc-abcdefgh-tcp-http"}
	cases := []struct {
		name string
		set  *nftables.Set
		vals []nftables.SetElement
	}{
		{"address set", &nftables.Set{Table: v4, Name: "addrs"},
			[]nftables.SetElement{{Key: []byte{10, 0, 0, 1}}, {Key: []byte{10, 0, 0, 2}}}},
		{"interval set", &nftables.Set{Table: v4, Name: "ranges", Interval: true},
			[]nftables.SetElement{{Key: []byte{10, 96, 0, 0}}, {Key: []byte{10, 97, 0, 0}, IntervalEnd: true}}},
		{"verdict map", &nftables.Set{Table: v4, Name: "service-ips", IsMap: true, ID: 7},
			[]nftables.SetElement{
				{Key: []byte{10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0}, VerdictData: jump},
				{Key: []byte{10, 96, 0, 2, 17, 0, 0, 0, 0, 53, 0, 0}, VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: "x"}},
				{Key: []byte{10, 96, 0, 3, 6, 0, 0, 0, 0, 81, 0, 0}, VerdictData: &expr.Verdict{Kind: expr.VerdictDrop}},
			}},
		{"data map", &nftables.Set{Table: v6, Name: "slots", IsMap: true},
			[]nftables.SetElement{{Key: bytes.Repeat([]byte{0xfd}, 28), Val: bytes.Repeat([]byte{1}, 20)}}},
		{"odd lengths", &nftables.Set{Table: v4, Name: "n"},
			[]nftables.SetElement{{Key: []byte{1, 2, 3}}, {Key: []byte{1, 2, 3, 4, 5}}}},
	}
	for _, tc := range cases {
		for _, add := range []bool{true, false} {
			want := googleElemMsg(t, tc.set, tc.vals, add)
			got, ok := appendElemMsg(nil, tc.set, tc.vals)
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("%s (add %v): kproxy encodes\n%x\ngoogle/nftables\n%x", tc.name, add, got, want)
			}
		}
	}
}

// Elements kproxy does not encode itself (a timeout, say) and lists too long for
// one attribute go through google/nftables.
func TestElemMsgLeavesTheRestToGoogleNftables(t *testing.T) {
	v4 := &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4}
	if encodable(&nftables.Set{Table: v4, Name: "a", HasTimeout: true}, []nftables.SetElement{{Key: []byte{1, 2, 3, 4}, Timeout: 5e9}}) {
		t.Error("an element with a timeout was encoded")
	}
	if !encodable(&nftables.Set{Table: v4, Name: "a"}, []nftables.SetElement{{Key: []byte{1, 2, 3, 4}}}) {
		t.Error("a plain element was not encoded")
	}
	long := make([]nftables.SetElement, 2000)
	for i := range long {
		long[i] = nftables.SetElement{Key: bytes.Repeat([]byte{byte(i)}, 16), Val: bytes.Repeat([]byte{1}, 16)}
	}
	if _, ok := appendElemMsg(nil, &nftables.Set{Table: v4, Name: "a", IsMap: true}, long); ok {
		t.Error("a list of 2,000 long elements fit one attribute")
	}
}
