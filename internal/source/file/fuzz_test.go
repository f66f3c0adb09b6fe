package file

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"

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
