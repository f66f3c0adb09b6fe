//go:build linux

package iptables

import (
	"context"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelLargeRestores loads restores in the large layout (each chain's rules
// after its declaration, jump targets first) into both backends' real tools: a
// cold sync of 300 Services and every feature, then a full sync after Services
// were removed, added and moved (stale chains deleted, dispatch rules deleted
// and inserted); the kernel must then hold exactly the model (a further full
// sync writes nothing).
func TestKernelLargeRestores(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env, r := kernelNS(t, b)
			p := newTestProxier(r)
			ctx := context.Background()
			if _, err := p.Sync(ctx, snapshot(manyServices(0, 300, 245)...), changes()); err != nil {
				t.Fatal(err)
			}
			saved := env.Node.MustRun(t, "iptables-"+string(b)+"-save", "-t", "nat")
			if !strings.Contains(saved, "-j DNAT --to-destination 10.245.2.200:8080") {
				t.Fatalf("kernel lacks the last Service's endpoint after the cold sync:\n%.2000s", saved)
			}
			next := manyServices(10, 300, 246)
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(next...), changes()); err != nil {
				t.Fatal(err)
			}
			if in := r.restores[len(r.restores)-1]; !strings.Contains(in, "\n-Z\n") || !strings.Contains(in, "\n-D KUBE-SERVICES ") || !strings.Contains(in, "\n-X KUBE-SEP-") {
				t.Fatalf("second sync was not a large restore deleting rules and chains:\n%.1000s", in)
			}
			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(next...), changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("full sync after the large restores had to repair:\n%.2000s", r.restores[len(r.restores)-1])
			}
		})
	}
}
