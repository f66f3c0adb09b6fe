package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// bigServiceDump is kube-proxy's layout for one Service with n endpoints.
func bigServiceDump(n int) string {
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-BIG - [0:0]\n")
	b.WriteString("-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-BIG\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, ":KUBE-SEP-%d - [0:0]\n", i)
		if i < n-1 {
			fmt.Fprintf(&b, "-A KUBE-SVC-BIG -m statistic --mode random --probability %.11f -j KUBE-SEP-%d\n", 1/float64(n-i), i)
		} else {
			fmt.Fprintf(&b, "-A KUBE-SVC-BIG -j KUBE-SEP-%d\n", i)
		}
		fmt.Fprintf(&b, "-A KUBE-SEP-%d -p tcp -m tcp -j DNAT --to-destination 10.%d.%d.%d:80\n", i, 1+i/65536, (i/256)%256, i%256)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func TestBigServiceStepsStayShort(t *testing.T) {
	r, err := TraceIptables(bigServiceDump(1000), Packet{Src: netip.MustParseAddr("10.0.0.1"),
		Dst: netip.MustParseAddr("10.96.0.1"), DPort: 80, Proto: "tcp", InInterface: "eth0"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Candidates) != 1000 {
		t.Fatalf("%d candidates, want 1000", len(r.Candidates))
	}
	for _, c := range r.Candidates {
		if len(c.Steps) > 4 {
			t.Fatalf("candidate %s has %d steps: skipped choices must collapse into one", c.Endpoint, len(c.Steps))
		}
		if d := c.Probability - 0.001; d > 1e-6 || d < -1e-6 {
			t.Fatalf("candidate %s: probability %v, want 0.001", c.Endpoint, c.Probability)
		}
	}
}

func BenchmarkTraceIptables1000Endpoints(b *testing.B) {
	dump := bigServiceDump(1000)
	p := Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.96.0.1"), DPort: 80, Proto: "tcp", InInterface: "eth0"}
	for b.Loop() {
		if _, err := TraceIptables(dump, p, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
