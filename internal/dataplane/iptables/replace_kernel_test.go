//go:build linux

package iptables

import (
	"context"
	"net/netip"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelReplaceInPlace moves one endpoint of a Service with 40 endpoints: the
// partial sync replaces the one KUBE-SVC rule that changed (-R) instead of
// rewriting the chain, and a full sync afterwards finds the kernel exactly as
// rendered, on both backends.
func TestKernelReplaceInPlace(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			_, r := kernelNS(t, b)
			p := newTestProxier(r)
			ctx := context.Background()
			s := largeService(40)
			if _, err := p.Sync(ctx, snapshot(s), changes()); err != nil {
				t.Fatal(err)
			}
			moved := largeService(40)
			moved.eps[20].IP = netip.MustParseAddr("10.245.0.1")
			st, err := p.Sync(ctx, snapshot(moved), changes(s.sp.Name))
			if err != nil || st.Full {
				t.Fatalf("partial sync: %v (full=%v)", err, st.Full)
			}
			in := r.restores[len(r.restores)-1]
			svcChain := chainsIn(&arena{}, portString(s.sp.Name), "tcp").svc
			if n := len(linesOf(in, "-R "+svcChain+" ")); n != 1 {
				t.Fatalf("want exactly one -R of %s, got %d in:\n%s", svcChain, n, in)
			}
			if len(linesOf(in, "-A "+svcChain+" ")) != 0 {
				t.Fatalf("%s was rewritten:\n%s", svcChain, in)
			}
			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(moved), changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("full sync after the in-place replace had to repair:\n%s", r.restores[len(r.restores)-1])
			}
		})
	}
}
