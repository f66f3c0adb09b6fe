//go:build linux

package iptables

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelBucketsReachEveryEndpoint loads a Service above the (lowered) bucket
// threshold into a real kernel, on both backends: 12 endpoints (one pod serving
// 12 ports) in bucketCount(12) = 4 buckets. Connections from the node and from a
// pod to the ClusterIP reach every endpoint. Removing one endpoint writes only the
// KUBE-SVC chain, one bucket chain and the removed KUBE-SEP chain, after which the
// endpoint is never chosen; adding it back writes the same three; after a move
// of one endpoint to another port connections reach the new one and never the
// old; and a full sync afterwards finds nothing to repair (the bucket
// probabilities round-trip).
func TestKernelBucketsReachEveryEndpoint(t *testing.T) {
	netns.RequireRoot(t)
	withBucketAbove(t, 4)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env := netns.New(t, "ipt-bucket")
			r := &recordingRunner{Runner: ExecRunner{Backend: b, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}}
			pod := env.AddBackend("pod")
			client := env.AddBackend("client")
			// The node's own connections need a route for the ClusterIP before
			// OUTPUT's DNAT, as on a real node (its default route).
			env.Node.MustRun(t, "ip", "route", "add", "10.96.0.0/16", "via", pod.IP.String())
			const n = 12
			all := newSvc("ns", "big", "http", tcp, "10.96.0.40", 80)
			less := newSvc("ns", "big", "http", tcp, "10.96.0.40", 80)
			moved := newSvc("ns", "big", "http", tcp, "10.96.0.40", 80)
			for k := 0; k < n; k++ {
				port := 8080 + k
				pod.ServeTCPReply(t, port, fmt.Sprint(port))
				all.ep(fmt.Sprintf("%s:%d", pod.IP, port), true, false)
				if k != 5 {
					less.ep(fmt.Sprintf("%s:%d", pod.IP, port), true, false)
					moved.ep(fmt.Sprintf("%s:%d", pod.IP, port), true, false)
				} else {
					moved.ep(fmt.Sprintf("%s:%d", pod.IP, 8080+n), true, false)
				}
			}
			pod.ServeTCPReply(t, 8080+n, fmt.Sprint(8080+n))
			p := newTestProxier(r)
			ctx := context.Background()
			if _, err := p.Sync(ctx, snapshot(all), changes()); err != nil {
				t.Fatal(err)
			}
			top := chainsFor(all.sp.Name).svc
			saved := env.Node.MustRun(t, "iptables-"+string(b)+"-save", "-t", "nat")
			if buckets := strings.Count(saved, "-A "+top+" -m comment --comment \"ns/big:http bucket "); buckets < 2 {
				t.Fatalf("%d bucket jumps in %s:\n%s", buckets, top, saved)
			}
			reachAll(t, []*netns.NS{env.Node, client}, "10.96.0.40:80", n, "")

			st, err := p.Sync(ctx, snapshot(less), changes(all.sp.Name))
			if err != nil || st.Full {
				t.Fatalf("partial sync: %+v %v", st, err)
			}
			removedSep := endpointChain(all.sp.Name, fmt.Sprintf("%s:%d", pod.IP, 8085))
			checkTouched(t, r.restores[len(r.restores)-1], top, removedSep)
			reachAll(t, []*netns.NS{env.Node, client}, "10.96.0.40:80", n-1, "8085")

			if st, err := p.Sync(ctx, snapshot(all), changes(all.sp.Name)); err != nil || st.Full {
				t.Fatalf("partial sync: %+v %v", st, err)
			}
			checkTouched(t, r.restores[len(r.restores)-1], top, removedSep)
			reachAll(t, []*netns.NS{env.Node, client}, "10.96.0.40:80", n, "")

			// A move (the partial render reuses every other chain): the
			// endpoint's old port is never chosen again, its new one is.
			if st, err := p.Sync(ctx, snapshot(moved), changes(all.sp.Name)); err != nil || st.Full {
				t.Fatalf("partial sync: %+v %v", st, err)
			}
			reachAll(t, []*netns.NS{env.Node, client}, "10.96.0.40:80", n, "8085")
			if st, err := p.Sync(ctx, snapshot(all), changes(all.sp.Name)); err != nil || st.Full {
				t.Fatalf("partial sync: %+v %v", st, err)
			}

			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(all), changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("full sync after the bucket changes had to repair:\n%s", r.restores[len(r.restores)-1])
			}
		})
	}
}

// checkTouched fails unless a restore input touches exactly the policy chain top,
// one bucket chain and the endpoint chain sep.
func checkTouched(t *testing.T, in, top, sep string) {
	t.Helper()
	var buckets []string
	for name := range touchedChains(in) {
		switch {
		case name == top || name == sep:
		case strings.HasPrefix(name, prefixSvc):
			buckets = append(buckets, name)
		default:
			t.Fatalf("restore touches %s:\n%s", name, in)
		}
	}
	if len(buckets) != 1 {
		t.Fatalf("restore touches %d bucket chains %v, want 1:\n%s", len(buckets), buckets, in)
	}
	if !strings.Contains(in, sep) || !strings.Contains(in, ":"+top+" ") && !strings.Contains(in, "-R "+top+" ") {
		t.Fatalf("restore does not write %s and %s:\n%s", top, sep, in)
	}
}

// reachAll connects to addr from each namespace in turn until want distinct
// endpoints (the reply is the port) have answered, failing if never answers or
// after 600 connections.
func reachAll(t *testing.T, from []*netns.NS, addr string, want int, never string) {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < 600 && (len(seen) < want || i < 100); i++ {
		got, err := from[i%len(from)].AskTCP(addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d to %s from %s: %v", i, addr, from[i%len(from)].Name, err)
		}
		if got == never {
			t.Fatalf("connection %d reached the removed endpoint %s", i, never)
		}
		seen[got]++
	}
	if len(seen) != want {
		var got []string
		for k := range seen {
			got = append(got, k)
		}
		sort.Strings(got)
		t.Fatalf("%d endpoints answered %v, want %d", len(seen), got, want)
	}
}
