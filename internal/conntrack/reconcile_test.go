package conntrack

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func udpSnapshot() *state.Snapshot {
	n := state.ServicePortName{Namespace: "kube-system", Name: "dns", Port: "dns", Protocol: v1.ProtocolUDP}
	tcpN := state.ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	a := netip.MustParseAddr
	return &state.Snapshot{
		ServiceMap: map[state.ServicePortName]*state.ServicePort{
			n: {Name: n, Protocol: v1.ProtocolUDP, Port: 53, NodePort: 30053, ClusterIPs: []netip.Addr{a("10.96.0.10")},
				ExternalIPs: []netip.Addr{a("192.0.2.10")}},
			tcpN: {Name: tcpN, Protocol: v1.ProtocolTCP, Port: 80, ClusterIPs: []netip.Addr{a("10.96.0.20")}},
		},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{
			n: {{IP: a("10.244.1.2"), Port: 5353, Ready: true, Serving: true},
				{IP: a("10.244.1.3"), Port: 5353, Terminating: true, Serving: false}},
			tcpN: {{IP: a("10.244.1.9"), Port: 8080, Ready: true, Serving: true}},
		},
	}
}

func udpFlow(dst string, dport uint16, reply string) Flow {
	return Flow{Protocol: protoUDP, OrigDst: netip.MustParseAddr(dst), OrigDstPort: dport, ReplySrc: netip.MustParseAddrPort(reply)}
}

func TestReconcileFindsFlowsToNonServingEndpoints(t *testing.T) {
	node := netip.MustParseAddr("192.168.1.1")
	flows := []Flow{
		udpFlow("10.96.0.10", 53, "10.244.1.2:5353"),         // serving endpoint: kept
		udpFlow("10.96.0.10", 53, "10.244.1.7:5353"),         // endpoint gone: deleted
		udpFlow("10.96.0.10", 53, "10.244.1.3:5353"),         // not serving: deleted
		udpFlow("192.0.2.10", 53, "10.244.1.7:5353"),         // external IP: deleted
		udpFlow("10.96.0.10", 53, "10.96.0.10:53"),           // never DNATed: deleted
		udpFlow("192.168.1.1", 30053, "10.244.1.7:5353"),     // NodePort on the node: deleted
		udpFlow("198.51.100.1", 30053, "198.51.100.1:30053"), // a remote host's port 30053: kept
		udpFlow("10.96.0.10", 54, "10.244.1.7:5353"),         // other port: not a Service
		udpFlow("10.96.0.20", 80, "10.244.1.7:5353"),         // TCP Service's address: not UDP-reconciled
		{Protocol: 6, OrigDst: netip.MustParseAddr("10.96.0.10"), OrigDstPort: 53, ReplySrc: netip.MustParseAddrPort("10.244.1.7:53")},
		udpFlow("10.96.0.10", 53, "10.244.1.7:5353"), // duplicate: one filter
	}
	got := Reconcile(flows, udpSnapshot(), func(a netip.Addr) bool { return a == node })
	var s []string
	for _, f := range got {
		s = append(s, f.String())
	}
	want := []string{
		"proto 17 dst 10.96.0.10:53 reply-src 10.244.1.7:5353",
		"proto 17 dst 10.96.0.10:53 reply-src 10.244.1.3:5353",
		"proto 17 dst 192.0.2.10:53 reply-src 10.244.1.7:5353",
		"proto 17 dst 10.96.0.10:53 reply-src 10.96.0.10:53",
		"proto 17 dst 192.168.1.1:30053 reply-src 10.244.1.7:5353",
	}
	if strings.Join(s, "\n") != strings.Join(want, "\n") {
		t.Fatalf("filters:\n%s\nwant:\n%s", strings.Join(s, "\n"), strings.Join(want, "\n"))
	}
	// Without isNodeAddr every destination on a NodePort counts, as in kube-proxy.
	if n := len(Reconcile(flows, udpSnapshot(), nil)); n != 6 {
		t.Fatalf("nil isNodeAddr: %d filters, want 6", n)
	}
}

type fakeLister map[Family][]Flow

func (f fakeLister) List(fam Family) ([]Flow, error) {
	if fam == IPv6 {
		return nil, errors.New("no IPv6 conntrack")
	}
	return f[fam], nil
}

// countingDeleter records the filters and claims one entry deleted per filter.
type countingDeleter struct{ filters []Filter }

func (c *countingDeleter) Delete(filters []Filter) (uint, error) {
	c.filters = append(c.filters, filters...)
	return uint(len(filters)), nil
}

func TestReconcilerRecordsMetricsAndKeepsGoingOnFamilyErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := &countingDeleter{}
	r := &Reconciler{
		Lister:   fakeLister{IPv4: {udpFlow("10.96.0.10", 53, "10.244.1.7:5353")}},
		Deleter:  d,
		Snapshot: udpSnapshot,
		Metrics:  NewReconcilerMetrics(reg),
	}
	n, err := r.ReconcileOnce()
	if n != 1 || err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Fatalf("ReconcileOnce = %d, %v; want 1 deleted and the IPv6 listing error", n, err)
	}
	if v := testutil.ToFloat64(r.Metrics.DeletedEntries.WithLabelValues("IPv4")); v != 1 {
		t.Fatalf("deleted_entries_total{ip_family=IPv4} = %v", v)
	}
	if c := testutil.CollectAndCount(reg, "kubeproxy_conntrack_reconciler_sync_duration_seconds"); c != 2 {
		t.Fatalf("sync duration series = %d, want one per family", c)
	}
	if len(d.filters) != 1 {
		t.Fatal("no filters reached the deleter")
	}
	r.Snapshot = func() *state.Snapshot { return nil }
	if n, err := r.ReconcileOnce(); n != 0 || err != nil {
		t.Fatalf("no snapshot yet: %d, %v", n, err)
	}
}
