package file

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/source"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

func newRejects(t testing.TB) (*source.Rejects, *syncbuf.Buffer) {
	t.Helper()
	lb := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(lb, nil))
	return source.NewRejects(nil, log), lb
}

func totalRejects(r *source.Rejects) float64 {
	n := 0.0
	for _, k := range source.Kinds {
		n += r.Count(k)
	}
	return n
}

func mustContain(t testing.TB, s, want string) {
	t.Helper()
	if !strings.Contains(s, want) {
		t.Fatalf("want %q in:\n%s", want, s)
	}
}

const svcWeb = `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  clusterIP: 10.96.0.10
  ports:
  - port: 80
    targetPort: 8080
`

const sliceWeb = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
  conditions: {ready: true}
ports:
- port: 8080
`

// sliceWebAt is sliceWeb with another endpoint address.
func sliceWebAt(ip string) string {
	return strings.Replace(sliceWeb, "127.0.0.1", ip, 1)
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
