//go:build linux

package ipvs

import (
	"net/netip"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func entries(m portModel) string {
	var out []string
	for _, e := range m.Sets {
		out = append(out, e.Set+" "+e.Entry)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestRenderLocalPoliciesSCTPAndHealthCheck(t *testing.T) {
	node := []netip.Addr{netip.MustParseAddr("192.168.7.2"), netip.MustParseAddr("127.0.0.1")}
	local := ep("10.1.0.1:80", 1)
	local.IsLocal = true
	remote := ep("10.1.0.2:80", 1)
	for _, tc := range []struct {
		name     string
		sp       func() *state.ServicePort
		wantSets []string
		noSets   []string
		// wantDests maps a virtual server to its real servers.
		wantDests map[vsKey][]string
	}{{
		name: "externalTrafficPolicy Local",
		sp: func() *state.ServicePort {
			sp := clusterIP("loc", "10.96.0.1", 80, v1.ProtocolTCP)
			sp.Type, sp.NodePort, sp.HealthCheckNodePort = v1.ServiceTypeLoadBalancer, 30001, 32000
			sp.ExternalPolicyLocal = true
			sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.1")}
			sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("198.18.0.1")}
			return sp
		},
		wantSets: []string{
			"KUBE-EXTERNAL-IP-LOCAL 203.0.113.1,tcp:80", "KUBE-LOAD-BALANCER-LOCAL 198.18.0.1,tcp:80",
			"KUBE-NODE-PORT-LOCAL-TCP 30001", "KUBE-HEALTH-CHECK-NODE-PORT 32000",
		},
		noSets: []string{"KUBE-EXTERNAL-IP 203.0.113.1", "KUBE-NODE-PORT-TCP 30001", "NO-LOCAL"},
		wantDests: map[vsKey][]string{
			key("10.96.0.1:80", protoTCP):      {"10.1.0.1:80", "10.1.0.2:80"},
			key("203.0.113.1:80", protoTCP):    {"10.1.0.1:80"},
			key("198.18.0.1:80", protoTCP):     {"10.1.0.1:80"},
			key("192.168.7.2:30001", protoTCP): {"10.1.0.1:80"},
		},
	}, {
		name: "internalTrafficPolicy Local",
		sp: func() *state.ServicePort {
			sp := clusterIP("iloc", "10.96.0.2", 80, v1.ProtocolTCP)
			sp.InternalPolicyLocal = true
			return sp
		},
		wantDests: map[vsKey][]string{key("10.96.0.2:80", protoTCP): {"10.1.0.1:80"}},
	}, {
		name: "SCTP NodePort",
		sp: func() *state.ServicePort {
			sp := clusterIP("sctp", "10.96.0.3", 80, v1.ProtocolSCTP)
			sp.Type, sp.NodePort = v1.ServiceTypeNodePort, 30003
			return sp
		},
		wantSets: []string{"KUBE-NODE-PORT-SCTP-HASH 192.168.7.2,sctp:30003", "KUBE-CLUSTER-IP 10.96.0.3,sctp:80"},
		noSets:   []string{"KUBE-NODE-PORT-TCP", "127.0.0.1"},
		wantDests: map[vsKey][]string{
			key("10.96.0.3:80", protoSCTP):      {"10.1.0.1:80", "10.1.0.2:80"},
			key("192.168.7.2:30003", protoSCTP): {"10.1.0.1:80", "10.1.0.2:80"},
		},
	}, {
		name: "UDP NodePort",
		sp: func() *state.ServicePort {
			sp := clusterIP("udp", "10.96.0.4", 53, v1.ProtocolUDP)
			sp.Type, sp.NodePort = v1.ServiceTypeNodePort, 30004
			return sp
		},
		// Hairpin masquerade for the local endpoint only (as kube-proxy).
		wantSets: []string{"KUBE-NODE-PORT-UDP 30004", "KUBE-LOOP-BACK 10.1.0.1,udp:80,10.1.0.1"},
		noSets:   []string{"KUBE-LOOP-BACK 10.1.0.2"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sp := tc.sp()
			cat := state.CategorizeEndpoints(sp, []state.Endpoint{local, remote}, state.NodeInfo{})
			m, err := renderPort(sp, cat, renderOptions{NodePortAddrs: node})
			if err != nil {
				t.Fatal(err)
			}
			got := entries(m)
			for _, w := range tc.wantSets {
				if !strings.Contains(got, w) {
					t.Errorf("sets lack %q:\n%s", w, got)
				}
			}
			for _, w := range tc.noSets {
				if strings.Contains(got, w) {
					t.Errorf("sets must not have %q:\n%s", w, got)
				}
			}
			servers := map[vsKey][]string{}
			for _, vs := range m.Servers {
				for a := range vs.Dests {
					servers[vs.Key] = append(servers[vs.Key], a.String())
				}
				sort.Strings(servers[vs.Key])
				if vs.Key.Addr.IsLoopback() {
					t.Errorf("virtual server on loopback %s", vs.Key)
				}
			}
			for k, want := range tc.wantDests {
				if strings.Join(servers[k], ",") != strings.Join(want, ",") {
					t.Errorf("%s: real servers %v, want %v", k, servers[k], want)
				}
			}
		})
	}
}

// A Local policy that finds no local endpoint while the Service has endpoints
// elsewhere: the external virtual servers hold the cluster-wide endpoints (for
// in-cluster clients) and every external address is listed for the filter to
// drop outside clients; the ClusterIP of internalTrafficPolicy Local stays
// without real servers and is listed to be dropped for everyone.
func TestRenderLocalPolicyWithoutLocalEndpoint(t *testing.T) {
	node := []netip.Addr{netip.MustParseAddr("192.168.7.2"), netip.MustParseAddr("127.0.0.1")}
	remote := []state.Endpoint{ep("10.1.0.2:80", 1), ep("10.1.0.3:80", 1)}
	sp := clusterIP("loc", "10.96.0.1", 80, v1.ProtocolTCP)
	sp.Type, sp.NodePort, sp.HealthCheckNodePort = v1.ServiceTypeLoadBalancer, 30001, 32000
	sp.ExternalPolicyLocal, sp.InternalPolicyLocal = true, true
	sp.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.1")}
	sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("198.18.0.1")}
	m, err := renderPort(sp, state.CategorizeEndpoints(sp, remote, state.NodeInfo{}), renderOptions{NodePortAddrs: node})
	if err != nil {
		t.Fatal(err)
	}
	got := entries(m)
	for _, w := range []string{
		"KUBE-EXTERNAL-NO-LOCAL 203.0.113.1,tcp:80", "KUBE-EXTERNAL-NO-LOCAL 198.18.0.1,tcp:80",
		"KUBE-EXTERNAL-NO-LOCAL 192.168.7.2,tcp:30001", "KUBE-CLUSTER-IP-NO-LOCAL 10.96.0.1,tcp:80",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("sets lack %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "NO-LOCAL 127.0.0.1") || strings.Contains(got, "EXTERNAL-NO-LOCAL 10.96.0.1") {
		t.Errorf("a loopback NodePort or the ClusterIP is listed as external:\n%s", got)
	}
	for _, vs := range m.Servers {
		want := 2
		if vs.Key.Addr == netip.MustParseAddr("10.96.0.1") {
			want = 0
		}
		if len(vs.Dests) != want {
			t.Errorf("%s: real servers %v, want %d", vs.Key, vs.Dests, want)
		}
	}

	// Without any endpoint nothing is dropped: every address is refused.
	m, err = renderPort(sp, state.CategorizeEndpoints(sp, nil, state.NodeInfo{}), renderOptions{NodePortAddrs: node})
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(m); strings.Contains(got, "NO-LOCAL") {
		t.Errorf("a Service without endpoints is listed to be dropped:\n%s", got)
	}
}
