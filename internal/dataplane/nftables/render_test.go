package nftables

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

func renderOne(o renderOptions, s spec, eps ...state.Endpoint) *fragment {
	sp := s.servicePort()
	return renderService(o, sp, state.CategorizeEndpoints(sp, eps, state.NodeInfo{Name: "node-a"}))
}

func TestRenderGolden(t *testing.T) {
	v4 := testOptions(familyIPv4)
	// A small Maglev table keeps the mh golden files readable.
	mh13 := v4
	mh13.mhTableSize = 13
	three := []state.Endpoint{ep("10.244.1.1", 8080), ep("10.244.2.1", 8080), ep("10.244.3.1", 8080)}
	cases := []struct {
		name string
		o    renderOptions
		s    spec
		eps  []state.Endpoint
	}{
		{"clusterip-random", v4, spec{name: "web", clusterIP: "10.96.0.10", port: 80}, three},
		{"clusterip-udp-one-endpoint", v4, spec{name: "dns", proto: v1.ProtocolUDP, clusterIP: "10.96.0.53", port: 53},
			[]state.Endpoint{ep("10.244.1.5", 53)}},
		{"no-endpoints-reject", v4, spec{name: "empty", clusterIP: "10.96.0.11", port: 80, nodePort: 30011}, nil},
		{"scheduler-rr", v4, spec{name: "rr", clusterIP: "10.96.0.12", port: 80, scheduler: "rr"}, three},
		{"scheduler-wrr", v4, spec{name: "wrr", clusterIP: "10.96.0.13", port: 80, scheduler: "wrr"},
			[]state.Endpoint{ep("10.244.1.1", 80, "w6"), ep("10.244.2.1", 80, "w2")}},
		{"scheduler-sh", v4, spec{name: "sh", clusterIP: "10.96.0.14", port: 80, scheduler: "sh"}, three},
		{"scheduler-mh", mh13, spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh", schedFlags: []string{"mh-fallback"}},
			[]state.Endpoint{ep("10.244.1.1", 8080, "w2"), ep("10.244.2.1", 8080), ep("10.244.3.1", 8080)}},
		{"scheduler-mh-port", mh13, spec{name: "mh", clusterIP: "10.96.0.15", port: 80, scheduler: "mh", schedFlags: []string{"mh-port"}}, three},
		{"scheduler-unknown-falls-back", v4, spec{name: "lc", clusterIP: "10.96.0.16", port: 80, scheduler: "lc"}, three[:2]},
		{"affinity", v4, spec{name: "sticky", clusterIP: "10.96.0.17", port: 80, affinity: 3 * time.Hour}, three[:2]},
		{"nodeport-externalip-cluster", v4, spec{name: "np", clusterIP: "10.96.0.18", port: 80, nodePort: 30080,
			external: []string{"192.0.2.10"}}, three[:2]},
		{"loadbalancer-source-ranges", v4, spec{name: "lb", clusterIP: "10.96.0.19", port: 443, nodePort: 30443,
			lbIPs: []string{"198.51.100.7"}, ranges: []string{"203.0.113.0/24", "192.0.2.0/25"}}, three[:1]},
		{"etp-local", v4, spec{name: "local", clusterIP: "10.96.0.20", port: 80, nodePort: 30020, eTPLocal: true},
			[]state.Endpoint{ep("10.244.1.1", 80, "local"), ep("10.244.2.1", 80)}},
		{"etp-local-no-local-endpoints", v4, spec{name: "nolocal", clusterIP: "10.96.0.21", port: 80, nodePort: 30021, eTPLocal: true},
			[]state.Endpoint{ep("10.244.2.1", 80)}},
		{"itp-local-no-local-endpoints", v4, spec{name: "itp", clusterIP: "10.96.0.22", port: 80, iTPLocal: true},
			[]state.Endpoint{ep("10.244.2.1", 80)}},
		{"terminating-fallback", v4, spec{name: "term", clusterIP: "10.96.0.23", port: 80},
			[]state.Endpoint{ep("10.244.1.1", 80, "term"), {IP: three[1].IP, Port: 80, Terminating: true}}},
		{"ipv6", testOptions(familyIPv6), spec{name: "v6", clusterIP: "fd00:96::10", port: 80, nodePort: 30600},
			[]state.Endpoint{ep("fd00:244::1", 8080), ep("fd00:244::2", 8080)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fr := renderOne(c.o, c.s, c.eps...)
			got := strings.Join(fragmentLines(c.o.fam, fr), "\n") + "\n"
			for _, w := range fr.warnings {
				got += "# warning: " + w + "\n"
			}
			checkGolden(t, c.name, got)
		})
	}
}

func TestRenderNodeGolden(t *testing.T) {
	o := testOptions(familyIPv4)
	checkGolden(t, "node-fib-local", strings.Join(fragmentLines(o.fam, renderNode(o)), "\n")+"\n")
}

// A shared-path Service (ClusterIP, external IP, load-balancer IP, NodePort) up to
// maxSharedPick endpoints is plain-set and data-map elements only: adding,
// removing or changing it commits no rule and no goto/jump element, so the kernel
// does not validate the table (shared.go). Past maxSharedPick it has chains of
// its own and verdict elements; sharedElemCount is exact on both sides.
func TestRenderSharedPathHasNoVerdict(t *testing.T) {
	o := testOptions(familyIPv4)
	s := spec{name: "web", clusterIP: "10.96.0.10", port: 80, nodePort: 30080,
		external: []string{"192.0.2.10"}, lbIPs: []string{"198.51.100.7"}}
	for _, n := range []int{1, 5, maxSharedPick, maxSharedPick + 1} {
		var eps []state.Endpoint
		for i := range n {
			eps = append(eps, ep(fmt.Sprintf("10.244.%d.%d", i/250, 1+i%250), 8080))
		}
		fr := renderOne(o, s, eps...)
		var verdicts []string
		sets := map[string]int{}
		for _, e := range fr.elems {
			if e.verdict() != "" {
				verdicts = append(verdicts, e.text())
			}
			sets[e.set()]++
		}
		shared := n <= maxSharedPick
		if shared && (len(verdicts) > 0 || len(fr.chains) > 0) {
			t.Errorf("%d endpoints: verdict elements %v, chains %d; want none", n, verdicts, len(fr.chains))
		}
		if !shared && len(verdicts) != 4 {
			t.Errorf("%d endpoints (own chains): verdict elements %v, want 4", n, verdicts)
		}
		if shared && (sets[pickSet(n)] != 1 || sets[externalPickSet(n)] != 2 || sets[nodePortPickSet(n)] != 1 ||
			sets[setPickIPs] != 1 || sets[setExternalPickIPs] != 2 || sets[setNodePortPickPorts] != 1) {
			t.Errorf("%d endpoints: elements per set %v", n, sets)
		}
		p, _ := narrow(o, s.servicePort(), state.Categorized{})
		if got, want := len(fr.elems), 1+sharedElemCount(p, n); got != want { // + cluster-ips
			t.Errorf("%d endpoints: %d elements, sharedElemCount says %d", n, got, want)
		}
	}
}

// A Service without a usable endpoint is plain-set elements too: rejected when it
// has no endpoint anywhere, dropped when its Local policy leaves none here.
func TestRenderNoEndpointsHasNoVerdict(t *testing.T) {
	o := testOptions(familyIPv4)
	for _, c := range []struct {
		name     string
		s        spec
		eps      []state.Endpoint
		ips, pts string
	}{
		{"none anywhere", spec{name: "empty", clusterIP: "10.96.0.11", port: 80, nodePort: 30011,
			external: []string{"192.0.2.11"}}, nil, setNoEndpointReject, setNoEndpointRejectPorts},
		// (eTP Local without a local endpoint keeps its external chain: in-cluster
		// clients of the external addresses still reach the Service.)
		{"none local (iTP Local)", spec{name: "local", clusterIP: "10.96.0.12", port: 80, iTPLocal: true},
			[]state.Endpoint{ep("10.244.2.1", 80)}, setNoEndpointDrop, ""},
	} {
		fr := renderOne(o, c.s, c.eps...)
		got := map[string]int{}
		for _, e := range fr.elems {
			if e.verdict() != "" {
				t.Errorf("%s: verdict element %s", c.name, e.text())
			}
			got[e.set()]++
		}
		wantIPs, wantPorts := 1+len(c.s.external), 0
		if c.s.nodePort != 0 {
			wantPorts = 1
		}
		if got[c.ips] != wantIPs || (c.pts != "" && got[c.pts] != wantPorts) || len(fr.chains) != 0 {
			t.Errorf("%s: elements per set %v and %d chains; want %d in %s, %d in %s, no chain",
				c.name, got, len(fr.chains), wantIPs, c.ips, wantPorts, c.pts)
		}
	}
}

func TestRenderOtherFamilyIsEmpty(t *testing.T) {
	fr := renderOne(testOptions(familyIPv6), spec{name: "web", clusterIP: "10.96.0.10", port: 80}, ep("10.244.1.1", 80))
	if len(fr.chains)+len(fr.elems)+len(fr.sets) != 0 {
		t.Fatalf("an IPv4 Service rendered objects into the ip6 table: %v", fragmentLines(familyIPv6, fr))
	}
}

func TestExpandWeightsReducesByGCDAndInterleaves(t *testing.T) {
	a, b := ep("10.0.0.1", 80, "w6"), ep("10.0.0.2", 80, "w2")
	got := expandWeights([]state.Endpoint{a, b})
	var names []string
	for _, e := range got {
		names = append(names, e.IP.String())
	}
	if s := strings.Join(names, ","); s != "10.0.0.1,10.0.0.1,10.0.0.2,10.0.0.1" {
		t.Fatalf("expandWeights(6:2) = %s, want 3:1 interleaved a,a,b,a", s)
	}
}

func BenchmarkRenderAll(b *testing.B) {
	for _, n := range benchSizes() {
		snap := bigSnapshot(n, 3)
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			for b.Loop() {
				renderAll(testOptions(familyIPv4), dataplane.NewRequest(snap))
			}
		})
	}
}

func BenchmarkRenderOneService(b *testing.B) {
	o := testOptions(familyIPv4)
	sp := spec{name: "web", clusterIP: "10.96.0.10", port: 80, nodePort: 30080}.servicePort()
	cat := state.CategorizeEndpoints(sp, []state.Endpoint{ep("10.244.1.1", 80), ep("10.244.1.2", 80), ep("10.244.1.3", 80)}, state.NodeInfo{})
	for b.Loop() {
		renderService(o, sp, cat)
	}
}

// benchSizes are the Service counts of BenchmarkRenderAll; KPROXY_BENCH_SERVICES
// adds one (e.g. 40000) without making the default run slow.
func benchSizes() []int {
	sizes := []int{1000, 10000}
	if n, err := strconv.Atoi(os.Getenv("KPROXY_BENCH_SERVICES")); err == nil && n > 0 {
		sizes = append(sizes, n)
	}
	return sizes
}
