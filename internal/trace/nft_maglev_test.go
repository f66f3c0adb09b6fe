package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// maglevDump is kproxy's mh layout: a select map of m slots over three endpoint
// chains, slot i going to endpoint i%3 (a real Maglev table interleaves too).
func maglevDump(m int, hashed string) string {
	var b strings.Builder
	b.WriteString("table ip kproxy {\n\tmap select-mh {\n\t\ttype mark : verdict\n\t\telements = { ")
	for i := 0; i < m; i++ {
		if i > 0 {
			b.WriteString(",\n\t\t\t")
		}
		fmt.Fprintf(&b, "0x%08x : goto endpoint-%d", i, i%3)
	}
	b.WriteString(" }\n\t}\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr 10.96.0.15 tcp dport 80 jhash %s mod %d seed 0x2fce57fa vmap @select-mh\n\t}\n", hashed, m)
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&b, "\tchain endpoint-%d {\n\t\tmeta l4proto tcp dnat to 10.244.%d.2:8080\n\t}\n", i, i+1)
	}
	b.WriteString("}\n")
	return b.String()
}

func TestNftMaglevShares(t *testing.T) {
	p := Packet{Src: netip.MustParseAddr("10.0.0.7"), Dst: netip.MustParseAddr("10.96.0.15"), DPort: 80, Proto: "tcp"}
	// Hashing the source port too: every slot is possible, shares by slot count.
	r, err := TraceNftables(maglevDump(4093, "ip saddr . th sport"), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"10.244.1.2:8080": 1365.0 / 4093, "10.244.2.2:8080": 1364.0 / 4093, "10.244.3.2:8080": 1364.0 / 4093}
	got := probabilities(t, r)
	for ep, w := range want {
		if d := got[ep] - w; d > 1e-5 || d < -1e-5 {
			t.Errorf("%s: share %v, want %v (all %v)", ep, got[ep], w, got)
		}
	}
	// Hashing the address alone: one slot, one endpoint.
	r, err = TraceNftables(maglevDump(4093, "ip saddr"), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Candidates) != 1 || r.Verdict.Kind != "dnat" {
		t.Errorf("jhash of the address: %d candidates (%s), want exactly one", len(r.Candidates), r.Verdict.Summary)
	}
}
