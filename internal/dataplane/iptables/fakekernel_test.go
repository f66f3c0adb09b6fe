package iptables

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakeipt"
)

// TestPartialSyncLeavesWhatAFullSyncWrites runs a full sync then one-Service partial
// syncs on the stateful fake and checks that each partial restore names only the
// changed Service's objects, and that the tables it leaves are exactly what a fresh
// full sync of the same snapshot writes.
func TestPartialSyncLeavesWhatAFullSyncWrites(t *testing.T) {
	a, b := twoServices()
	c := newSvc("ns", "c", "dns", udp, "10.96.0.3", 53).ep("10.244.3.2:53", true, false).
		with(func(sp *state.ServicePort) { sp.NodePort = 30053 })
	steps := []struct {
		name  string
		after []*svc
		touch *svc
	}{
		{"endpoint replaced", []*svc{newSvc("ns", "a", "http", tcp, "10.96.0.1", 80).ep("10.244.1.2:8080", true, false).ep("10.244.1.9:8080", true, false), b, c}, a},
		{"service added", []*svc{a, b, c, newSvc("ns", "d", "http", tcp, "10.96.0.4", 80).ep("10.244.4.2:80", true, false)}, newSvc("ns", "d", "http", tcp, "10.96.0.4", 80)},
		{"service deleted", []*svc{a, c}, b},
		{"last endpoint gone", []*svc{a, b, newSvc("ns", "c", "dns", udp, "10.96.0.3", 53).with(func(sp *state.ServicePort) { sp.NodePort = 30053 })}, c},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			f := fakeipt.New()
			p := newTestProxier(f)
			if _, err := p.Sync(context.Background(), snapshot(a, b, c), changes()); err != nil {
				t.Fatal(err)
			}
			stats, err := p.Sync(context.Background(), snapshot(st.after...), changes(st.touch.sp.Name))
			if err != nil || stats.Full {
				t.Fatalf("partial sync: %+v %v", stats, err)
			}
			sent := f.LastInput()
			for _, other := range []*svc{a, b, c} {
				if other.sp.Name == st.touch.sp.Name {
					continue
				}
				if n := other.sp.Name.String(); strings.Contains(sent, n) {
					t.Errorf("partial restore mentions unchanged %s:\n%s", n, sent)
				}
			}
			fresh := fakeipt.New()
			if _, err := newTestProxier(fresh).Sync(context.Background(), snapshot(st.after...), changes()); err != nil {
				t.Fatal(err)
			}
			if got, want := f.Dump(), fresh.Dump(); !reflect.DeepEqual(orderFree(got), orderFree(want)) {
				t.Fatalf("after the partial sync the tables differ from a fresh full sync:\n%s\nwant:\n%s\n(partial input:\n%s)", got, want, sent)
			}
		})
	}
}

// orderFree parses iptables-save output and sorts the rules of the shared dispatch
// chains, whose order among Services carries no meaning (a partial sync inserts a new
// Service's rule first, a full sync writes them by name); rules that must stay last
// (the tail) are kept last.
func orderFree(save string) kernelState {
	ks := parseSave([]byte(save))
	for _, ref := range renderFixed(testRenderConfig()).Dispatch {
		rules := ks[ref.Table][ref.Name]
		var body, tail []string
		for _, r := range rules {
			if strings.Contains(r, "must be the last rule") {
				tail = append(tail, r)
			} else {
				body = append(body, r)
			}
		}
		sort.Strings(body)
		if len(rules) > 0 {
			ks[ref.Table][ref.Name] = append(body, tail...)
		}
	}
	return ks
}
