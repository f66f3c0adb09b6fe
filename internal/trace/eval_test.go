package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// statisticDump is a nat OUTPUT chain choosing among len(ps)+1 endpoints with the
// given --probability values, the last unconditionally.
func statisticDump(ps ...string) string {
	var b strings.Builder
	b.WriteString("*nat\n:OUTPUT ACCEPT [0:0]\n:SVC - [0:0]\n")
	b.WriteString("-A OUTPUT -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j SVC\n")
	for i, p := range ps {
		fmt.Fprintf(&b, "-A SVC -m statistic --mode random --probability %s -j DNAT --to-destination 10.0.0.%d:80\n", p, i+1)
	}
	fmt.Fprintf(&b, "-A SVC -j DNAT --to-destination 10.0.0.%d:80\nCOMMIT\n", len(ps)+1)
	return b.String()
}

func probabilities(t *testing.T, r *Result) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, c := range r.Candidates {
		out[c.Endpoint] = c.Probability
	}
	return out
}

func TestChainedProbabilities(t *testing.T) {
	p := Packet{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.96.0.1"), DPort: 80, Proto: "tcp"}
	for _, c := range []struct {
		ps   []string
		want []float64
	}{
		// kube-proxy's 1/(n-i): every endpoint equally likely.
		{[]string{"0.20000000000", "0.25000000000", "0.33333333349", "0.50000000000"}, []float64{.2, .2, .2, .2, .2}},
		// P(i) = p_i * prod_{j<i}(1-p_j): 0.5, 0.5*0.5, rest.
		{[]string{"0.5", "0.5"}, []float64{.5, .25, .25}},
		{[]string{"0.1", "0.9"}, []float64{.1, .81, .09}},
		// Probability 1 takes everything; later rules get nothing.
		{[]string{"1.0"}, []float64{1}},
	} {
		r, err := TraceIptables(statisticDump(c.ps...), p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := probabilities(t, r)
		if len(got) != len(c.want) {
			t.Errorf("%v: candidates %v, want %v", c.ps, got, c.want)
			continue
		}
		sum := 0.0
		for i, w := range c.want {
			ep := fmt.Sprintf("10.0.0.%d:80", i+1)
			if d := got[ep] - w; d > 1e-6 || d < -1e-6 {
				t.Errorf("%v: %s has %v, want %v", c.ps, ep, got[ep], w)
			}
			sum += got[ep]
		}
		if d := sum - 1; d > 1e-6 || d < -1e-6 {
			t.Errorf("%v: probabilities sum to %v", c.ps, sum)
		}
	}
}

func TestMarkTargets(t *testing.T) {
	for _, c := range []struct {
		args map[string]string
		from uint32
		want uint32
	}{
		{map[string]string{"--set-xmark": "0x4000/0x4000"}, 0x1, 0x4001},
		{map[string]string{"--set-xmark": "0x4000/0x0"}, 0x4001, 0x0001},
		{map[string]string{"--set-xmark": "0x0/0xf0000"}, 0x34001, 0x4001},
		{map[string]string{"--or-mark": "0x8000"}, 0x4000, 0xc000},
		{map[string]string{"--and-mark": "0xff"}, 0x4001, 0x1},
		{map[string]string{"--xor-mark": "0x4000"}, 0x4001, 0x1},
		{map[string]string{"--set-mark": "0x2/0xf"}, 0x15, 0x12},
	} {
		if got := applyMarkTarget(c.from, c.args); got != c.want {
			t.Errorf("%v on %#x = %#x, want %#x", c.args, c.from, got, c.want)
		}
	}
}

func TestIptablesParseErrorsNameTheLine(t *testing.T) {
	for in, want := range map[string]string{
		"*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -m comment --comment \"open -j ACCEPT\n": "line 3",
		"*nat\n-A OUTPUT -d 10.0.0.300 -j ACCEPT\n":                                     "line 2",
		"hello\n": "no table",
	} {
		_, err := TraceIptables(in, Packet{Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("2.2.2.2"), DPort: 1, Proto: "tcp"}, Options{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", in, err, want)
		}
	}
}

func TestIptablesNegationsAndMasks(t *testing.T) {
	dump := `*filter
:INPUT ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT ! -d 10.0.0.0/255.0.0.0 -j ACCEPT
-A OUTPUT -m mark ! --mark 0x1/0x1 -p udp -j REJECT
-A OUTPUT -p tcp -m multiport --dports 22,8000:8100 -j ACCEPT
COMMIT
`
	for to, want := range map[string]string{
		"192.168.1.1:5/udp": "accept", // ! -d 10/8 matches
		"10.1.1.1:5/udp":    "reject", // unmarked udp
		"10.1.1.1:8050/tcp": "accept", // multiport range
		"10.1.1.1:9000/tcp": "drop",   // chain policy
	} {
		dst, port, proto, _ := ParseDestination(to)
		r, err := TraceIptables(dump, Packet{Src: netip.MustParseAddr("10.9.9.9"), Dst: dst, DPort: port, Proto: proto}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Verdict.Kind != want {
			t.Errorf("%s: %s, want %s", to, r.Verdict.Kind, want)
		}
	}
}

func TestNftPriorities(t *testing.T) {
	for in, want := range map[string]int{"dstnat": -100, "dstnat - 10": -110, "srcnat": 100,
		"filter + 5": 5, "-300": -300, "mangle": -150} {
		got, err := parsePriority(strings.Fields(in))
		if err != nil || got != want {
			t.Errorf("priority %q = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestNftInetTableSeesBothFamilies(t *testing.T) {
	dump := `table inet fw {
	chain out {
		type filter hook output priority filter; policy accept;
		ip daddr 10.0.0.1 drop
		ip6 daddr fd00::1 reject
	}
}
`
	for to, want := range map[string]string{"10.0.0.1:80": "drop", "[fd00::1]:80": "reject", "[fd00::2]:80": "accept"} {
		dst, port, proto, err := ParseDestination(to)
		if err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("10.9.9.9")
		if dst.Is6() {
			src = netip.MustParseAddr("fd00::9")
		}
		r, err := TraceNftables(dump, Packet{Src: src, Dst: dst, DPort: port, Proto: proto}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Verdict.Kind != want {
			t.Errorf("%s: %s, want %s (notes %v)", to, r.Verdict.Kind, want, r.Notes)
		}
	}
}
