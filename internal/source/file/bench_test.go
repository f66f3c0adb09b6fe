package file

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/source/sourcetest"
)

// manifest returns n Services, each with one EndpointSlice of two endpoints, as one
// multi-document YAML file.
func manifest(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: svc-%d, namespace: bench}
spec:
  clusterIP: 10.96.%d.%d
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-%d-1, namespace: bench, labels: {kubernetes.io/service-name: svc-%d}}
addressType: IPv4
endpoints:
- addresses: [10.1.%d.%d]
- addresses: [10.2.%d.%d]
ports: [{name: http, port: 8080}]
---
`, i, i>>8, i&255, i, i, i>>8, i&255, i>>8, i&255)
	}
	return []byte(b.String())
}

// BenchmarkLoadManifest measures reading a changed file of n Services (and n
// slices) into the Handler: decode, validate, diff, deliver.
func BenchmarkLoadManifest(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			data := manifest(n)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				st := newStore(nil, slog.New(slog.DiscardHandler))
				h := sourcetest.NewRecorder()
				st.load("bench.yaml", data)
				st.sync(h)
				if len(h.Services) != n || len(h.Slices) != n {
					b.Fatalf("delivered %d services %d slices", len(h.Services), len(h.Slices))
				}
			}
		})
	}
}

// BenchmarkEditOneObject measures applying a one-line edit to a file of n Services:
// only the edited document is decoded again.
func BenchmarkEditOneObject(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			versions := [2][]byte{manifest(n), manifest(n)}
			versions[1] = []byte(strings.Replace(string(versions[1]), "addresses: [10.1.0.0]", "addresses: [10.3.0.0]", 1))
			st := newStore(nil, slog.New(slog.DiscardHandler))
			h := sourcetest.NewRecorder()
			st.load("bench.yaml", versions[0])
			st.sync(h)
			h.TakeCalls()
			round := 0
			b.ReportAllocs()
			for b.Loop() {
				round++
				st.load("bench.yaml", versions[round%2])
				st.sync(h)
				if calls := h.TakeCalls(); len(calls) != 1 {
					b.Fatalf("calls %v", calls)
				}
			}
		})
	}
}
