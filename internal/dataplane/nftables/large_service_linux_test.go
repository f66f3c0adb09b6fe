//go:build linux

package nftables

import (
	"fmt"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/state"
)

// TestKernelLargeService loads a Service with more endpoints than the shared pick
// chains (maxSharedPick) and a cascade of rules (maxCascade) serve. On the shared
// path it gets a pick chain of its own over the service-endpoints data map; off it
// (here: internalTrafficPolicy Local) the pick is one numgen lookup in its select
// map. Either way connections spread over the endpoints, and moving one endpoint
// is a partial sync that writes a handful of objects, not the whole picker.
func TestKernelLargeService(t *testing.T) {
	const n = maxCascade + 72
	for _, c := range []struct {
		name  string
		iTP   bool
		flags []string
		pick  string
		// maxRemove bounds the objects written when 5 endpoints leave. The
		// select map numbers its elements in endpoint order, so there the slots
		// after the first removed one are all rewritten (no bound).
		maxRemove int
	}{
		{"own-pick-chain", false, nil, fmt.Sprintf("numgen random mod %d map @%s", n, mapServiceEndpoints), 60},
		{"select-map", true, []string{"local"}, fmt.Sprintf("numgen random mod %d vmap @select-", n), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestbed(t)
			// Every address of 10.201.0.0/24 is local in the backend namespace.
			tb.backend.ip(t, "route", "add", "local", "10.201.0.0/24", "dev", "lo")
			s := &spec{name: "large", clusterIP: "10.96.0.30", port: 80, iTPLocal: c.iTP}
			eps := make([]state.Endpoint, n)
			for i := range eps {
				eps[i] = ep(fmt.Sprintf("10.201.0.%d", i+1), 8080, c.flags...)
			}
			tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: eps}))
			listing := tb.proxy.exec(t, "nft", "list", "table", "ip", "kproxy")
			if !strings.Contains(listing, c.pick) {
				t.Fatalf("no %q for %d endpoints:\n%s", c.pick, n, firstLines(listing, 60))
			}
			got := count(tb.connect(t, "10.96.0.30:80", 30))
			for addr := range got {
				if !strings.HasPrefix(addr, "10.201.0.") {
					t.Fatalf("connection reached %s, not an endpoint", addr)
				}
			}
			if len(got) < 10 {
				t.Fatalf("30 connections reached only %d of %d endpoints: %v", len(got), n, got)
			}

			gone := eps[n/2].IP.String()
			eps[n/2] = ep("10.201.0.250", 8080, c.flags...)
			st := tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: eps}), s.portName())
			if st.Full || st.Written["ip"] == 0 || st.Written["ip"] > 10 {
				t.Fatalf("moving one of %d endpoints: full=%v written=%v, want a partial sync of a few objects",
					n, st.Full, st.Written)
			}
			if c := count(tb.connect(t, "10.96.0.30:80", 30)); c[gone] != 0 {
				t.Fatalf("the removed endpoint %s still took connections: %v", gone, c)
			}
			listing = tb.proxy.exec(t, "nft", "list", "table", "ip", "kproxy")
			if !strings.Contains(listing, "10.201.0.250") {
				t.Fatalf("the moved endpoint is not in the table:\n%s", firstLines(listing, 60))
			}

			// Five endpoints leave from the middle: on the shared path the last
			// slots' endpoints move into their slots (slots.go) and only those are
			// rewritten; connections reach the remaining endpoints only.
			removed := map[string]bool{}
			for _, e := range eps[20:25] {
				removed[e.IP.String()] = true
			}
			eps = append(eps[:20:20], eps[25:]...)
			st = tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: eps}), s.portName())
			if st.Full || (c.maxRemove > 0 && st.Written["ip"] > c.maxRemove) {
				t.Fatalf("removing 5 of %d endpoints: full=%v written=%v, want a partial sync of a few objects",
					n, st.Full, st.Written)
			}
			remaining := map[string]bool{}
			for _, e := range eps {
				remaining[e.IP.String()] = true
			}
			got = count(tb.connect(t, "10.96.0.30:80", 30))
			for addr := range got {
				if removed[addr] || !remaining[addr] {
					t.Fatalf("after removing 5 endpoints a connection reached %s: %v", addr, got)
				}
			}
			if len(got) < 10 {
				t.Fatalf("30 connections reached only %d of %d endpoints: %v", len(got), len(eps), got)
			}
		})
	}
}
