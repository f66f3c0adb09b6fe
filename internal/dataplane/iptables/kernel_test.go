//go:build linux

package iptables

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// recordingRunner wraps a real runner and keeps every restore input.
type recordingRunner struct {
	Runner
	mu       sync.Mutex
	restores []string
}

func (r *recordingRunner) Restore(ctx context.Context, input []byte, noflush bool) error {
	r.mu.Lock()
	r.restores = append(r.restores, string(input))
	r.mu.Unlock()
	return r.Runner.Restore(ctx, input, noflush)
}

func (r *recordingRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.restores)
}

func backends(t *testing.T) []Backend {
	var out []Backend
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		if _, err := exec.LookPath("iptables-" + string(b) + "-restore"); err != nil {
			t.Fatalf("iptables-%s-restore is required for kernel tests: %v", b, err)
		}
		out = append(out, b)
	}
	return out
}

// kernelNS returns a runner bound to a fresh node namespace.
func kernelNS(t *testing.T, b Backend) (*netns.Env, *recordingRunner) {
	env := netns.New(t, "iptables-dp")
	return env, &recordingRunner{Runner: ExecRunner{Backend: b, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}}
}

func allFeatures() []*svc {
	seen := map[string]bool{}
	var out []*svc
	for i, c := range goldenCases {
		if c.cfg != nil {
			continue
		}
		s := c.svc
		if seen[s.sp.Name.String()] {
			// Same Service name in two cases: rename to keep both.
			cp := *s.sp
			cp.Name.Name = fmt.Sprintf("%s-%d", cp.Name.Name, i)
			s = &svc{sp: &cp, eps: s.eps}
		}
		seen[s.sp.Name.String()] = true
		out = append(out, s)
	}
	return out
}

// TestKernelRoundTrip loads every Service feature into a real kernel and checks that
// what iptables-save reads back compares equal to the rendering: a second full sync
// must write nothing at all. If it did, every periodic full sync would rewrite
// chains of Services that did not change.
func TestKernelRoundTrip(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env, r := kernelNS(t, b)
			p := newTestProxier(r)
			snap := snapshot(allFeatures()...)
			st, err := p.Sync(context.Background(), snap, changes())
			if err != nil {
				t.Fatal(err)
			}
			if !st.Full || st.Written["nat"] == 0 {
				t.Fatalf("first sync: %+v", st)
			}
			saved := env.Node.MustRun(t, "iptables-"+string(b)+"-save", "-t", "nat")
			for _, want := range []string{"--probability 0.33333333349", "-j DNAT --to-destination 10.244.3.2:8080", "-A PREROUTING"} {
				if !strings.Contains(saved, want) {
					t.Fatalf("kernel lacks %q after the first sync:\n%s", want, saved)
				}
			}
			before := r.count()
			p.core.Invalidate()
			st, err = p.Sync(context.Background(), snap, changes())
			if err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("second full sync wrote:\n%s", r.restores[len(r.restores)-1])
			}
			if st.Rules["nat"] == 0 || st.Rules["filter"] == 0 {
				t.Fatalf("rule counts: %+v", st.Rules)
			}
		})
	}
}

// TestKernelCleanupRemovesEverything checks that Cleanup leaves no KUBE- chain or
// jump behind in either backend.
func TestKernelCleanupRemovesEverything(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env, r := kernelNS(t, b)
			p := newTestProxier(r)
			if _, err := p.Sync(context.Background(), snapshot(allFeatures()...), changes()); err != nil {
				t.Fatal(err)
			}
			if err := p.Cleanup(context.Background()); err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"mangle", "filter", "nat"} {
				out := env.Node.MustRun(t, "iptables-"+string(b)+"-save", "-t", table)
				if strings.Contains(out, "KUBE-") {
					t.Errorf("%s table still mentions KUBE- after cleanup:\n%s", table, out)
				}
			}
		})
	}
}

// TestKernelPartialSyncsKeepModelTrue runs partial syncs (add, change, remove) against
// a real kernel, then forces a full sync: it must find nothing to repair, which
// proves the in-memory model of what the kernel holds stayed true.
func TestKernelPartialSyncsKeepModelTrue(t *testing.T) {
	netns.RequireRoot(t)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			_, r := kernelNS(t, b)
			p := newTestProxier(r)
			ctx := context.Background()
			a, c := twoServices()
			if _, err := p.Sync(ctx, snapshot(a), changes()); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				snap    []*svc
				changed *svc
			}{
				{[]*svc{a, c}, c},
				{[]*svc{newSvc("ns", "a", "http", tcp, "10.96.0.1", 80).ep("10.244.1.7:8080", true, false), c}, a},
				{[]*svc{newSvc("ns", "a", "http", tcp, "10.96.0.1", 80), c}, a},
				{[]*svc{c}, a},
			}
			for i, s := range steps {
				st, err := p.Sync(ctx, snapshot(s.snap...), changes(s.changed.sp.Name))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if st.Full {
					t.Fatalf("step %d: want a partial sync", i)
				}
			}
			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(c), changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("full sync after partial syncs had to repair:\n%s", r.restores[len(r.restores)-1])
			}
		})
	}
}
