package nodeaddr

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, x := range s {
		out[i] = netip.MustParseAddr(x)
	}
	return out
}

func TestSelect(t *testing.T) {
	local := addrs("127.0.0.1", "192.168.1.10", "10.0.0.7", "::1", "fe80::1", "2001:db8::7")
	node := addrs("10.0.0.7", "203.0.113.5", "2001:db8::7")
	cases := []struct {
		name  string
		node  []netip.Addr
		list  []string
		deflt []string
		want  string
	}{
		{name: "no node object, empty list: every interface but link-local",
			want: "10.0.0.7 127.0.0.1 192.168.1.10 ::1 2001:db8::7"},
		{name: "node object, empty list: the node's addresses", node: node,
			want: "10.0.0.7 203.0.113.5 2001:db8::7"},
		{name: "empty list takes the mode default", node: node, deflt: []string{"primary"},
			want: "10.0.0.7 2001:db8::7"},
		{name: "explicit all", node: node, list: []string{"all"},
			want: "10.0.0.7 203.0.113.5 2001:db8::7"},
		{name: "CIDR narrows node addresses", node: node, list: []string{"203.0.113.0/24"},
			want: "203.0.113.5"},
		{name: "CIDR narrows interfaces", list: []string{"192.168.0.0/16", "2001:db8::/32"},
			want: "192.168.1.10 2001:db8::7"},
		{name: "primary without node object: every global interface address",
			list: []string{"primary"}, want: "10.0.0.7 192.168.1.10 2001:db8::7"},
		{name: "localhost keyword adds loopback even with a node object", node: node,
			list: []string{"localhost"}, want: "127.0.0.1 ::1"},
		{name: "loopback CIDR", node: node, list: []string{"127.0.0.0/8"}, want: "127.0.0.1"},
		{name: "keywords and CIDRs combine without duplicates", node: node,
			list: []string{"primary", "10.0.0.0/8"}, want: "10.0.0.7 2001:db8::7"},
		{name: "nothing matches", node: node, list: []string{"172.16.0.0/12"}, want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Select(Options{NodeAddresses: c.node, LocalAddresses: local,
				NodePortAddresses: c.list, Default: c.deflt})
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if strings.Join(s, " ") != c.want {
				t.Fatalf("Select = %q, want %q", strings.Join(s, " "), c.want)
			}
		})
	}
}

func TestSelectRejectsBadEntryNamingIt(t *testing.T) {
	_, err := Select(Options{NodePortAddresses: []string{"10.0.0.0/8", "10.0.0.300/32"}})
	if err == nil || !strings.Contains(err.Error(), "nodePortAddresses[1]") || !strings.Contains(err.Error(), "10.0.0.300/32") {
		t.Fatalf("error = %v, want one naming nodePortAddresses[1] and the value", err)
	}
}

func TestIsLocal(t *testing.T) {
	local := addrs("192.168.1.10")
	for _, c := range []struct {
		a    string
		want bool
	}{{"127.3.4.5", true}, {"::1", true}, {"192.168.1.10", true}, {"::ffff:192.168.1.10", true}, {"10.96.0.1", false}} {
		if got := IsLocal(netip.MustParseAddr(c.a), local); got != c.want {
			t.Errorf("IsLocal(%s) = %v, want %v", c.a, got, c.want)
		}
	}
}

func TestLocalAddressesIncludesLoopback(t *testing.T) {
	got, err := LocalAddresses()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("LocalAddresses = %v, want 127.0.0.1 among them", got)
	}
}
