package trace

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"kproxy.dev/kproxy/internal/testing/golden"
)

type goldenCase struct {
	name  string
	dump  string
	from  string
	to    string
	in    string
	opts  Options
	json  bool
	check func(t *testing.T, r *Result)
}

func node(addrs ...string) Options {
	o := Options{LocalKnown: true}
	for _, a := range addrs {
		o.LocalAddrs = append(o.LocalAddrs, netip.MustParseAddr(a))
	}
	return o
}

func runGolden(t *testing.T, cases []goldenCase, trace func(string, Packet, Options) (*Result, error)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dump, err := os.ReadFile(filepath.Join("testdata", c.dump))
			if err != nil {
				t.Fatal(err)
			}
			dst, port, proto, err := ParseDestination(c.to)
			if err != nil {
				t.Fatal(err)
			}
			p := Packet{Src: netip.MustParseAddr(c.from), Dst: dst, DPort: port, Proto: proto, InInterface: c.in}
			r, err := trace(string(dump), p, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			r.Source = c.dump
			if c.check != nil {
				c.check(t, r)
			}
			var out bytes.Buffer
			if c.json {
				err = WriteJSON(&out, r)
			} else {
				err = WriteText(&out, r)
			}
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, c.name, out.Bytes())
		})
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, name+".golden", got)
}

// wantVerdict checks the verdict and the candidate endpoints with their
// probabilities (in any order).
func wantVerdict(kind string, eps map[string]float64) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		t.Helper()
		if r.Verdict.Kind != kind {
			t.Errorf("verdict %q (%s), want %q", r.Verdict.Kind, r.Verdict.Summary, kind)
		}
		if eps == nil {
			return
		}
		got := map[string]float64{}
		for _, c := range r.Candidates {
			got[c.Endpoint] = c.Probability
		}
		if len(got) != len(eps) {
			t.Errorf("candidates %v, want %v", got, eps)
		}
		for ep, p := range eps {
			if d := got[ep] - p; d > 1e-4 || d < -1e-4 {
				t.Errorf("candidate %s: probability %v, want %v (all: %v)", ep, got[ep], p, got)
			}
		}
	}
}
