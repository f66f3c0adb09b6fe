//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// TestPartialSyncLeavesWhatAFullSyncWrites runs a full sync then a one-Service
// partial sync on the stateful fakes, and checks that the partial sync wrote only
// that Service's virtual servers and ipset entries (no iptables at all), and that
// the node then holds exactly what a fresh full sync of the same snapshot programs.
func TestPartialSyncLeavesWhatAFullSyncWrites(t *testing.T) {
	a := clusterIP("a", "10.96.0.1", 80, v1.ProtocolTCP)
	b := clusterIP("b", "10.96.0.2", 80, v1.ProtocolTCP)
	b.NodePort = 30002
	c := clusterIP("c", "10.96.0.3", 53, v1.ProtocolUDP)
	c.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.3")}
	d := clusterIP("d", "10.96.0.4", 80, v1.ProtocolTCP)
	steps := []struct {
		name  string
		touch *state.ServicePort
		sp    *state.ServicePort // nil deletes touch
		eps   []state.Endpoint
	}{
		{"endpoint replaced", c, c, []state.Endpoint{ep("10.1.3.9:53", 1)}},
		{"service added", d, d, []state.Endpoint{ep("10.1.4.1:80", 1)}},
		{"service deleted", b, nil, nil},
		{"last endpoint gone", a, a, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			build := func(f *fixture) {
				f.set(a.Name, a, ep("10.1.1.1:80", 1), ep("10.1.1.2:80", 1))
				f.set(b.Name, b, ep("10.1.2.1:8080", 1))
				f.set(c.Name, c, ep("10.1.3.1:53", 1))
			}
			f := newFixture(t, proxierOptions{})
			build(f)
			f.sync(state.ChangeSet{})
			f.ipvs.TakeWrites()
			sets, ipts := len(f.ipset.Restores()), len(f.ipt.V4.Restores())
			f.sync(f.set(st.touch.Name, st.sp, st.eps...))
			if f.p.needFull {
				t.Fatal("the change must not need a full sync")
			}
			var sent []string
			sent = append(sent, f.ipvs.TakeWrites()...)
			for _, in := range f.ipset.Restores()[sets:] {
				sent = append(sent, strings.Split(strings.TrimSpace(in), "\n")...)
			}
			if len(sent) == 0 {
				t.Fatal("the partial sync wrote nothing")
			}
			for _, other := range []*state.ServicePort{a, b, c, d} {
				if other.Name == st.touch.Name {
					continue
				}
				for _, tok := range ownTokens(other) {
					for _, l := range sent {
						if strings.Contains(l, tok) {
							t.Errorf("partial sync of %s wrote %q, which is %s's (%s)", st.touch.Name.Name, l, other.Name.Name, tok)
						}
					}
				}
			}
			if n := len(f.ipt.V4.Restores()); n != ipts {
				t.Errorf("a partial sync ran iptables-restore %d times", n-ipts)
			}

			fresh := newFixture(t, proxierOptions{})
			build(fresh)
			fresh.set(st.touch.Name, st.sp, st.eps...)
			fresh.sync(state.ChangeSet{})
			if got, want := f.node.Dump(DummyLink), fresh.node.Dump(DummyLink); got != want {
				t.Fatalf("after the partial sync the node holds:\n%s\na fresh full sync gives:\n%s", got, want)
			}
		})
	}
}

// ownTokens are strings that appear only in one test Service's kernel objects: its
// addresses, its NodePort, and the prefix of its endpoints (10.1.<n>.).
func ownTokens(sp *state.ServicePort) []string {
	var out []string
	for _, a := range append(append([]netip.Addr{}, sp.ClusterIPs...), sp.ExternalIPs...) {
		out = append(out, a.String()+",", a.String()+":")
	}
	if sp.NodePort != 0 {
		out = append(out, fmt.Sprint(sp.NodePort))
	}
	n := sp.ClusterIPs[0].As4()[3]
	return append(out, fmt.Sprintf("10.1.%d.", n))
}
