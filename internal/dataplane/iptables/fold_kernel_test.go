//go:build linux

package iptables

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/netns"
)

// TestKernelFoldedRemoteEndpoints loads a NodePort Service with two endpoints on
// other nodes (folded: DNAT rules in KUBE-SVC, no KUBE-SEP chain; the node-wide
// threshold lowered to 1) and one on this node (its KUBE-SEP chain kept) into a
// real kernel, on both backends. Connections to the ClusterIP from the node and
// from an outside client reach all three endpoints; the local endpoint calling
// its own Service reaches itself masqueraded (the hairpin rule of its KUBE-SEP
// chain); an outside client reaches every endpoint through the NodePort; and a
// second full sync finds nothing to repair (the folded rules round-trip through
// iptables-save).
func TestKernelFoldedRemoteEndpoints(t *testing.T) {
	netns.RequireRoot(t)
	withFoldAbove(t, 1)
	for _, b := range backends(t) {
		t.Run(string(b), func(t *testing.T) {
			env := netns.New(t, "ipt-ipfold")
			r := &recordingRunner{Runner: ExecRunner{Backend: b, Wrap: []string{"ip", "netns", "exec", env.Node.Name}}}
			remote1 := env.AddBackend("remote1") // stand for pods on other nodes
			remote2 := env.AddBackend("remote2")
			local := env.AddBackend("local")
			client := env.AddClient("client")
			for _, pod := range []*netns.NS{remote1, remote2, local} {
				pod.ServeTCP(t, 8080)
			}
			env.Node.MustRun(t, "ip", "route", "add", "10.96.0.0/16", "via", remote1.IP.String())
			s := newSvc("ns", "fold", "http", tcp, "10.96.0.40", 80).
				on(remote1.IP.String()+":8080", "node-b").on(remote2.IP.String()+":8080", "node-c").on(local.IP.String()+":8080", "node-a").
				with(func(sp *state.ServicePort) { sp.Type = v1.ServiceTypeNodePort; sp.NodePort = 30040 })
			p := newTestProxier(r)
			ctx := context.Background()
			if _, err := p.Sync(ctx, snapshot(s), changes()); err != nil {
				t.Fatal(err)
			}
			saved := env.Node.MustRun(t, "iptables-"+string(b)+"-save", "-t", "nat")
			localSep := endpointChain(s.sp.Name, local.IP.String()+":8080")
			if seps := strings.Count(saved, ":"+prefixSep); seps != 1 || !strings.Contains(saved, ":"+localSep) {
				t.Fatalf("%d KUBE-SEP chains, want only the local endpoint's %s:\n%s", seps, localSep, saved)
			}
			if dnats := strings.Count(saved, "-A "+chainsFor(s.sp.Name).svc+" -p tcp -m comment --comment \"ns/fold:http -> "); dnats != 2 {
				t.Fatalf("%d folded DNAT rules in KUBE-SVC, want 2:\n%s", dnats, saved)
			}

			reachAll(t, []*netns.NS{env.Node, client}, "10.96.0.40:80", 3, "")
			reachAll(t, []*netns.NS{client}, fmt.Sprintf("%s:30040", client.NodeIP), 3, "")

			// The local endpoint calling its own Service, until it is chosen.
			hairpin := false
			for i := 0; i < 200 && !hairpin; i++ {
				name, src, err := local.AskTCPSource("tcp4", "10.96.0.40:80", 2*time.Second)
				if err != nil {
					t.Fatalf("connection %d from the local endpoint: %v", i, err)
				}
				if name != local.Name {
					continue
				}
				hairpin = true
				if src == local.IP.String() {
					t.Fatalf("the local endpoint reached itself from its own address %s: not hairpin-masqueraded", src)
				}
			}
			if !hairpin {
				t.Fatal("the local endpoint never reached itself in 200 connections")
			}

			before := r.count()
			p.core.Invalidate()
			if _, err := p.Sync(ctx, snapshot(s), changes()); err != nil {
				t.Fatal(err)
			}
			if r.count() != before {
				t.Fatalf("a full sync of the folded layout had to repair:\n%s", r.restores[len(r.restores)-1])
			}
		})
	}
}
