package file

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	discovery "k8s.io/api/discovery/v1"

	"kproxy.dev/kproxy/internal/source/sourcetest"
)

// FuzzLoad feeds arbitrary bytes through decode, validate and sync: bad input must
// be rejected, never panic. `go test` runs the seeds; `go test -fuzz FuzzLoad`
// explores further.
func FuzzLoad(f *testing.F) {
	dump, err := os.ReadFile("testdata/kubectl-dump.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{string(dump), svcWeb, sliceWeb, svcWeb + "---\n" + sliceWeb, "", "---\n---\n", "{}", "[]", "kind: List\napiVersion: v1\nitems: [{}]\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st := newStore(nil, slog.New(slog.DiscardHandler))
		h := sourcetest.NewRecorder()
		st.load("fuzz.yaml", data)
		st.sync(h)
		// A second version built from the first: exercises the diff and the cache.
		st.load("fuzz.yaml", append([]byte(svcWeb+"---\n"), data...))
		st.sync(h)
	})
}

// FuzzDecode feeds arbitrary bytes to the manifest decoder (splitting, pre-scan,
// decoding, validation). Bad input must be rejected, never panic or hang; decoding
// must not depend on the document cache; and an accepted EndpointSlice is within
// MaxSliceEndpoints. Seeds are in testdata/fuzz/FuzzDecode (over-budget inputs
// among them) and run on every `go test`; `make fuzz-short` explores for a while.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{svcWeb, sliceWeb, "", "{}", "[]", "a: *b\n", "&a [*a]\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxFileBytes {
			return // never read
		}
		first := parseFile(data, nil)
		again := parseFile(data, first.docs)
		if got, want := summary(again), summary(first); got != want {
			t.Fatalf("decoding with the cache differs:\n got %s\nwant %s", got, want)
		}
		for _, d := range first.objects {
			if d.err == nil && d.obj == nil {
				t.Fatalf("%s: neither an object nor an error", d.object())
			}
			if es, ok := d.obj.(*discovery.EndpointSlice); ok && d.err == nil && len(es.Endpoints) > MaxSliceEndpoints {
				t.Fatalf("%s: %d endpoints accepted", d.object(), len(es.Endpoints))
			}
		}
	})
}

// summary is what parseFile found, as text to compare.
func summary(res parseResult) string {
	var b strings.Builder
	for _, d := range res.objects {
		fmt.Fprintf(&b, "%s %v|", d.object(), d.err)
	}
	for _, e := range res.unidentified {
		fmt.Fprintf(&b, "%s %v|", e.object, e.err)
	}
	return b.String()
}

// TestLoadMutatedInputs is a deterministic, bounded fuzz: byte flips, truncations,
// duplications and splices of valid manifests must never panic or hang.
// KPROXY_MUTATIONS raises the count for a longer local run.
func TestLoadMutatedInputs(t *testing.T) {
	n := 300
	if s := os.Getenv("KPROXY_MUTATIONS"); s != "" {
		fmt.Sscan(s, &n)
	}
	dump, err := os.ReadFile("testdata/kubectl-dump.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{dump, []byte(svcWeb + "---\n" + sliceWeb)}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(":-[]{}\"' \n#&*!|>0123456789.abcxyzNone")
	for i := 0; i < n; i++ {
		data := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for m := rng.IntN(8) + 1; m > 0 && len(data) > 0; m-- {
			p := rng.IntN(len(data))
			switch rng.IntN(4) {
			case 0:
				data[p] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				data = data[:p]
			case 2:
				q := p + rng.IntN(len(data)-p)
				data = append(data[:q:q], append(append([]byte(nil), data[p:q]...), data[q:]...)...)
			case 3:
				data = append(data[:p:p], data[p+rng.IntN(len(data)-p):]...)
			}
		}
		st := newStore(nil, slog.New(slog.DiscardHandler))
		h := sourcetest.NewRecorder()
		st.load("a.yaml", seeds[1])
		st.sync(h)
		st.load("a.yaml", data)
		st.sync(h)
	}
}
