package fakeipt

import (
	"context"
	"strings"
	"testing"
)

func TestStrictFamiliesRejectTheOtherFamily(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		r       *Runner
		rule    string
		wantErr string
	}{
		{"v4 takes v4", NewIPv4(), "-A OUTPUT -d 10.96.0.1/32 -j ACCEPT", ""},
		{"v4 refuses a /128", NewIPv4(), "-A OUTPUT -d fd00::1/128 -j ACCEPT", "invalid mask `128'"},
		{"v4 refuses a v6 DNAT", NewIPv4(), "-A OUTPUT -p tcp -j DNAT --to-destination [fd00::1]:80", "bad IP address"},
		{"v4 refuses icmp6", NewIPv4(), "-A OUTPUT -j REJECT --reject-with icmp6-port-unreachable", "reject type"},
		{"v6 takes v6", NewIPv6(), "-A OUTPUT -s fd00::/64 -p tcp -j DNAT --to-destination [fd00::1]:80", ""},
		{"v6 refuses v4", NewIPv6(), "-A OUTPUT -s 10.0.0.0/8 -j ACCEPT", "not found"},
		{"v6 refuses icmp", NewIPv6(), "-A OUTPUT -j REJECT --reject-with icmp-port-unreachable", "reject type"},
		{"New takes both", New(), "-A OUTPUT -d fd00::1/128 -j ACCEPT", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.Restore(ctx, []byte("*nat\n"+c.rule+"\nCOMMIT\n"), true)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, c.wantErr)
			case c.wantErr != "" && len(c.r.Rules("nat", "OUTPUT")) != 0:
				t.Fatal("a failed restore changed the table")
			}
		})
	}
}
