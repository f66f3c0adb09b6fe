//go:build linux

package nftables

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/trace"
)

// dialFrom connects from a given source address inside ns and returns the backend.
func dialFrom(t *testing.T, ns *netns, src, addr string) string {
	t.Helper()
	var got string
	var derr error
	ns.do(t, func() {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			derr = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		got, derr = bufio.NewReader(c).ReadString('\n')
	})
	if derr != nil {
		t.Fatalf("connect %s from %s: %v", addr, src, derr)
	}
	return strings.TrimSuffix(strings.TrimSpace(got), ":8080")
}

// addAddrs adds n addresses from 10.200.0.first on to the veth of ns.
func addAddrs(t *testing.T, ns *netns, first, n int) []string {
	t.Helper()
	dev := strings.TrimSpace(strings.SplitN(ns.ip(t, "-o", "link", "show", "type", "veth"), ":", 3)[1])
	dev, _, _ = strings.Cut(dev, "@")
	var out []string
	for i := range n {
		a := fmt.Sprintf("10.200.0.%d", first+i)
		ns.ip(t, "addr", "add", a+"/32", "dev", dev)
		out = append(out, a)
	}
	return out
}

func TestKernelMaglevKeepsClientsAndMovesOnlyThoseOfARemovedBackend(t *testing.T) {
	tb := newTestbed(t)
	clients := addAddrs(t, tb.proxy, 100, 24)
	// Five backends: the three of the testbed and two more addresses.
	all := backendEndpoints()
	for _, a := range addAddrs(t, tb.backend, 5, 2) {
		all = append(all, ep(a, 8080))
	}
	s := &spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh"}
	specs := map[*spec][]state.Endpoint{s: all}
	tb.sync(t, snapshotOf(specs))

	// The kernel must pick exactly the endpoint the rendered Maglev table holds at
	// the client's jhash slot, before and after the removal.
	predict := func(eps []state.Endpoint, client string) string {
		fr := renderOne(testOptions(familyIPv4), *s, eps...)
		slots := selectSlots(fr)
		slot := trace.JhashScaled(netip.MustParseAddr(client).As4(), seedOf(s.portName().String()), uint64(len(slots)))
		_, ip, _ := strings.Cut(slots[slot], "__")
		ip, _, _ = strings.Cut(ip, "/")
		return ip
	}
	before := map[string]string{}
	for _, c := range clients {
		for range 3 {
			got := dialFrom(t, tb.proxy, c, "10.96.0.15:80")
			if want := predict(all, c); got != want {
				t.Fatalf("client %s reached %s; its Maglev slot holds %s", c, got, want)
			}
			before[c] = got
		}
	}
	spread := map[string]int{}
	for _, b := range before {
		spread[b]++
	}
	if len(spread) < 4 {
		t.Fatalf("24 clients over 5 backends reached only %v", spread)
	}

	// Remove a backend in the middle of the list: a plain hash scaled over the
	// endpoint count would move clients of the backends after it too.
	gone := all[1].IP.String()
	if spread[gone] == 0 {
		t.Fatalf("no client was on %s (spread %v): the test would prove nothing", gone, spread)
	}
	rest := append(append([]state.Endpoint{}, all[:1]...), all[2:]...)
	specs[s] = rest
	st := tb.sync(t, snapshotOf(specs), s.portName())
	if st.Full || st.Written["ip"] >= 4093 {
		t.Fatalf("removing one backend: full=%v written=%v; want a partial sync rewriting the moved slots only", st.Full, st.Written)
	}
	moved := 0
	for _, c := range clients {
		got := dialFrom(t, tb.proxy, c, "10.96.0.15:80")
		if want := predict(rest, c); got != want {
			t.Fatalf("after the removal client %s reached %s; its Maglev slot holds %s", c, got, want)
		}
		if got == gone {
			t.Fatalf("client %s still reached the removed backend %s", c, gone)
		}
		if before[c] != gone && got != before[c] {
			moved++
		}
	}
	// Maglev moves a few slots between the remaining backends too (under 1% here):
	// allow one such client in 24, where a plain hash over 5 then 4 endpoints moves
	// about 15% of them.
	if moved > 1 {
		t.Fatalf("%d clients of remaining backends moved", moved)
	}
	t.Logf("spread %v; clients of remaining backends moved: %d", spread, moved)
}

func TestKernelMaglevPortSpreadsOneClient(t *testing.T) {
	tb := newTestbed(t)
	s := &spec{name: "mhp", clusterIP: "10.96.0.16", port: 80, scheduler: "mh", schedFlags: []string{"mh-port"}}
	tb.sync(t, snapshotOf(map[*spec][]state.Endpoint{s: backendEndpoints()}))
	// Every connection has a new source port: with mh-port one client spreads.
	if c := count(tb.connect(t, "10.96.0.16:80", 12)); len(c) < 2 {
		t.Fatalf("mh-port: 12 connections of one client reached only %v", c)
	}
}
