package nodeaddr

import "testing"

func TestContainsIPv4Loopback(t *testing.T) {
	for _, c := range []struct {
		list, dflt []string
		want       bool
	}{
		{nil, nil, true}, // iptables default: all
		{nil, []string{"primary"}, false},
		{[]string{"all"}, nil, true},
		{[]string{"localhost"}, nil, true},
		{[]string{"127.0.0.0/8"}, nil, true},
		{[]string{"0.0.0.0/0"}, nil, true},
		{[]string{"primary"}, nil, false},
		{[]string{"192.168.0.0/16", "::1/128"}, nil, false},
		{[]string{"primary", "127.0.0.1/32"}, nil, true},
		{[]string{"primary", "127.0.0.0/31"}, nil, true},
	} {
		got, err := ContainsIPv4Loopback(c.list, c.dflt)
		if err != nil || got != c.want {
			t.Errorf("ContainsIPv4Loopback(%q, %q) = %v, %v; want %v", c.list, c.dflt, got, err, c.want)
		}
	}
	if _, err := ContainsIPv4Loopback([]string{"bogus"}, nil); err == nil {
		t.Error("bogus entry accepted")
	}
}

func TestNamesLoopback(t *testing.T) {
	for _, c := range []struct {
		list []string
		want bool
	}{
		{nil, false},
		{[]string{"all"}, false},
		{[]string{"0.0.0.0/0"}, false},
		{[]string{"primary"}, false},
		{[]string{"localhost"}, true},
		{[]string{"primary", "127.0.0.1/32"}, true},
		{[]string{"::1/128"}, true},
	} {
		got, err := NamesLoopback(c.list)
		if err != nil || got != c.want {
			t.Errorf("NamesLoopback(%q) = %v, %v; want %v", c.list, got, err, c.want)
		}
	}
}

func TestDefaultFor(t *testing.T) {
	for _, m := range []string{"nftables", "ebpf"} {
		if d := DefaultFor(m); len(d) != 1 || d[0] != "primary" {
			t.Errorf("%s default %q, want [primary]", m, d)
		}
	}
	for _, m := range []string{"iptables", "ipvs", "userspace"} {
		if d := DefaultFor(m); d != nil {
			t.Errorf("%s default %q, want all (nil)", m, d)
		}
	}
}
