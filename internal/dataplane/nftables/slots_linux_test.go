//go:build linux

package nftables

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakenft"
)

// slotEndpoints is n ready endpoints 10.250.x.y:8080 numbered from first.
func slotEndpoints(first, n int) []state.Endpoint {
	eps := make([]state.Endpoint, n)
	for i := range eps {
		k := first + i
		eps[i] = state.Endpoint{IP: netip.AddrFrom4([4]byte{10, 250, byte(k >> 8), byte(k)}), Port: 8080,
			Ready: true, Serving: true, Weight: 1}
	}
	return eps
}

// withoutSlotIndexes rewrites a fake-kernel dump so that two tables whose data
// maps send the same keys to the same endpoints, in any slot order, print the
// same: the slot index leaves the key of every service-endpoints and
// nodeport-endpoints element, and those elements are sorted. It also checks that
// each key's slots are numbered 0..n-1 (the pick chain's "mod n" reaches them all).
func withoutSlotIndexes(t *testing.T, dump string) string {
	t.Helper()
	var out, group []string
	indexes := map[string][]int{}
	inSlots := false
	flush := func() {
		slices.Sort(group)
		out = append(out, group...)
		group = nil
	}
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "\tset ") || strings.HasPrefix(l, "\tchain ") {
			flush()
			name := strings.Fields(l)[1]
			inSlots = name == mapServiceEndpoints || name == mapNodePortEndpoints
			out = append(out, l)
			continue
		}
		if !inSlots || !strings.HasPrefix(l, "\t\t") {
			out = append(out, l)
			continue
		}
		key, val, _ := strings.Cut(strings.TrimSpace(l), " : ")
		// The index is the key's last 4 bytes, in host order.
		raw, err := hex.DecodeString(key[len(key)-8:])
		if err != nil {
			t.Fatalf("slot key %q: %v", key, err)
		}
		i := int(binary.NativeEndian.Uint32(raw))
		indexes[key[:len(key)-8]] = append(indexes[key[:len(key)-8]], i)
		group = append(group, "\t\t"+key[:len(key)-8]+" : "+val)
	}
	flush()
	for k, is := range indexes {
		slices.Sort(is)
		for j, i := range is {
			if i != j {
				t.Fatalf("slots of %s are %v, want 0..%d", k, is, len(is)-1)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestLargeServiceUpdateWritesOnlyTheChange changes the endpoints of a Service
// past maxSharedPick (ClusterIP, an external IP and a NodePort) step by step on the
// fake kernel. After each partial sync the table must route exactly as a fresh full
// sync's does (same elements, the slots in any order), the self-check must find
// the kernel equal to the model, and a change of k endpoints must write about k
// slot groups, not the Service.
func TestLargeServiceUpdateWritesOnlyTheChange(t *testing.T) {
	const n = maxSharedPick + 72
	s := &spec{name: "large", clusterIP: "10.96.0.40", port: 80, nodePort: 30040, external: []string{"192.0.2.40"}}
	// One slot group is 4 elements (ClusterIP, external IP and NodePort slots,
	// hairpin pair): an endpoint replaced in its slot deletes 4 and adds 4. A
	// change of the endpoint count also rewrites the 3 pick chains ("mod n").
	const perEndpoint, pickChains = 8, 12
	steps := []struct {
		name string
		edit func([]state.Endpoint) []state.Endpoint
		// maxWritten bounds the objects the partial sync writes; 0: no bound
		// (a full render of the Service is expected).
		maxWritten int
	}{
		{"one moved", func(e []state.Endpoint) []state.Endpoint {
			e[n/2] = slotEndpoints(1000, 1)[0]
			return e
		}, perEndpoint},
		{"three removed from the middle", func(e []state.Endpoint) []state.Endpoint {
			return slices.Delete(e, 10, 13)
		}, 3*perEndpoint + pickChains},
		{"five added", func(e []state.Endpoint) []state.Endpoint {
			return slices.Insert(e, 7, slotEndpoints(2000, 5)...)
		}, 5*perEndpoint + pickChains},
		{"ten removed, two added", func(e []state.Endpoint) []state.Endpoint {
			e = slices.Delete(e, 50, 60)
			return append(e, slotEndpoints(3000, 2)...)
		}, 12*perEndpoint + pickChains},
		{"first and last swap places", func(e []state.Endpoint) []state.Endpoint {
			e[0], e[len(e)-1] = e[len(e)-1], e[0]
			return e
		}, 1},
		{"one not ready", func(e []state.Endpoint) []state.Endpoint {
			e[3].Ready = false
			return e
		}, perEndpoint + pickChains},
		{"port changes (full render)", func(e []state.Endpoint) []state.Endpoint {
			for i := range e {
				e[i].Port = 9090
			}
			return e
		}, 0},
		{"shrinks to the shared chains", func(e []state.Endpoint) []state.Endpoint { return e[:maxSharedPick] }, 0},
		{"grows past them again", func(e []state.Endpoint) []state.Endpoint {
			return append(e, slotEndpoints(4000, 40)...)
		}, 0},
		{"one moved again", func(e []state.Endpoint) []state.Endpoint {
			e[1] = slotEndpoints(5000, 1)[0]
			return e
		}, perEndpoint},
		{"a duplicate (full render)", func(e []state.Endpoint) []state.Endpoint { return append(e, e[5]) }, 0},
		{"the duplicate goes", func(e []state.Endpoint) []state.Endpoint { return e[:len(e)-1] }, 0},
	}
	k := fakenft.New()
	p := fakeProxier(t, k)
	eps := slotEndpoints(1, n)
	if !syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{s: eps})) {
		t.Fatal("first sync must be full")
	}
	for _, st := range steps {
		eps = st.edit(slices.Clone(eps))
		snap := snapshotOf(map[*spec][]state.Endpoint{s: eps})
		cs := state.ChangeSet{Ports: map[state.ServicePortName]struct{}{s.portName(): {}}}
		res, err := p.Sync(context.Background(), snap, cs)
		if err != nil || res.Full {
			t.Fatalf("%s: partial sync: %v (full=%v)", st.name, err, res.Full)
		}
		if st.maxWritten > 0 && res.Written["ip"] > st.maxWritten {
			t.Errorf("%s: wrote %d objects, want at most %d", st.name, res.Written["ip"], st.maxWritten)
		}
		fresh := fakenft.New()
		syncOn(t, fakeProxier(t, fresh), snap)
		got := withoutSlotIndexes(t, withoutStale(t, k.Dump(nftables.TableFamilyIPv4, tableName), p.tables[0]))
		want := withoutSlotIndexes(t, fresh.Dump(nftables.TableFamilyIPv4, tableName))
		if strings.TrimSuffix(got, "\n") != strings.TrimSuffix(want, "\n") {
			t.Fatalf("%s: after the partial sync:\n%s\nfresh full sync:\n%s", st.name, got, want)
		}
		if why, err := p.tables[0].intact(); err != nil || why != "" {
			t.Fatalf("%s: the model differs from the kernel: %q %v", st.name, why, err)
		}
	}
}

// TestLargeServiceUpdateKeepsSharedHairpins: two large Services with
// the same endpoints keep their hairpin pairs (counted per owner) while one of
// them loses an endpoint.
func TestLargeServiceUpdateKeepsSharedHairpins(t *testing.T) {
	const n = maxSharedPick + 10
	a := &spec{name: "a", clusterIP: "10.96.0.41", port: 80}
	b := &spec{name: "b", clusterIP: "10.96.0.42", port: 80}
	eps := slotEndpoints(1, n)
	k := fakenft.New()
	p := fakeProxier(t, k)
	syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{a: eps, b: eps}))
	gone := eps[4].IP
	if syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{a: slices.Delete(slices.Clone(eps), 4, 5), b: eps}), a.portName()) {
		t.Fatal("want a partial sync")
	}
	pair := fmt.Sprintf("%x%x", gone.AsSlice(), gone.AsSlice())
	if !slices.Contains(k.Elements(nftables.TableFamilyIPv4, tableName, setHairpin), pair) {
		t.Fatalf("hairpin pair of %s went though Service b still has the endpoint", gone)
	}
	syncOn(t, p, snapshotOf(map[*spec][]state.Endpoint{a: slices.Delete(slices.Clone(eps), 4, 5),
		b: slices.Delete(slices.Clone(eps), 4, 5)}), b.portName())
	if slices.Contains(k.Elements(nftables.TableFamilyIPv4, tableName, setHairpin), pair) {
		t.Fatalf("hairpin pair of %s stayed after its last Service lost it", gone)
	}
}
