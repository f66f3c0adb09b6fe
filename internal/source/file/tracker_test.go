package file

import (
	"log/slog"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

// The file source feeding the real Tracker: a kubectl dump becomes ServicePorts.
func TestKubectlDumpIntoTracker(t *testing.T) {
	r, lb := newRejects(t)
	tr := state.NewTracker(state.Options{NodeName: "kind-worker", Reject: r.Reject})
	st := newStore(r, slog.New(slog.DiscardHandler))
	st.load("dump.yaml", []byte(mustRead(t, "testdata/kubectl-dump.yaml")))
	st.sync(tr)
	snap, changes := tr.Snapshot()
	if totalRejects(r) != 0 {
		t.Fatalf("rejects:\n%s", lb)
	}
	// kubernetes:https, kube-dns x3, web:http; the headless db is skipped.
	if snap.Len() != 5 || len(changes.Ports) != 5 {
		t.Fatalf("services %v", snap.SortedNames())
	}
	dns := state.ServicePortName{Namespace: "kube-system", Name: "kube-dns", Port: "dns", Protocol: v1.ProtocolUDP}
	if eps := snap.EndpointsOf(dns); len(eps) != 2 || eps[0].String() != "10.244.0.3:53" {
		t.Fatalf("kube-dns:dns endpoints %v", eps)
	}
	web := state.ServicePortName{Namespace: "shop", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	sp := snap.Service(web)
	if sp == nil || sp.NodePort != 30080 || !sp.ExternalPolicyLocal || sp.AffinityTimeout.Seconds() != 600 {
		t.Fatalf("web: %+v", sp)
	}
	if eps := snap.EndpointsOf(web); len(eps) != 1 || !eps[0].IsLocal {
		t.Fatalf("web endpoints %+v", eps)
	}
}
