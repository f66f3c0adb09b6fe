package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	_ "kproxy.dev/kproxy/internal/dataplane/all" // the modes, as the binary links them
	"kproxy.dev/kproxy/internal/trace"
)

func runTraceJSON(t *testing.T, f *traceFlags) *trace.Result {
	t.Helper()
	f.json, f.timeout = true, 5*time.Second
	var out bytes.Buffer
	if err := runTrace(context.Background(), &out, f); err != nil {
		t.Fatal(err)
	}
	var r trace.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return &r
}

func TestTraceFromFileDetectsTheDump(t *testing.T) {
	for file, mode := range map[string]string{
		"../trace/testdata/kube-proxy-iptables.dump": "iptables",
		"../trace/testdata/kube-proxy-nftables.dump": "nftables",
		"../trace/testdata/kube-proxy-ipvs.dump":     "ipvs",
	} {
		r := runTraceJSON(t, &traceFlags{fromFiles: []string{file}, from: "198.51.100.20", to: "192.168.10.5:30080",
			inInterface: "eth0", nodeIPs: []string{"192.168.10.5"}})
		if r.Mode != mode || r.Verdict.Kind != "dnat" || len(r.Candidates) < 2 {
			t.Errorf("%s: mode %s verdict %+v with %d candidates, want %s DNAT over several endpoints",
				file, r.Mode, r.Verdict, len(r.Candidates), mode)
		}
	}
}

func TestTraceIpvsFromThreeDumps(t *testing.T) {
	r := runTraceJSON(t, &traceFlags{from: "10.244.1.7", to: "10.96.12.34:80", inInterface: "cni0",
		nodeIPs: []string{"192.168.10.5"}, fromFiles: []string{"../trace/testdata/kube-proxy-ipvs.ipset",
			"../trace/testdata/kube-proxy-ipvs-iptables.dump", "../trace/testdata/kube-proxy-ipvs.dump"}})
	if r.Mode != "ipvs" || len(r.Candidates) != 3 || !r.MasqueradeSome {
		t.Errorf("mode %s, %d candidates, masqueradeSome %v: want ipvs, 3, hairpin masquerade from KUBE-LOOP-BACK",
			r.Mode, len(r.Candidates), r.MasqueradeSome)
	}
}

func TestTraceRejectsBadFlagsNamingThem(t *testing.T) {
	for _, c := range []struct {
		f    traceFlags
		want string
	}{
		{traceFlags{from: "nope", to: "10.96.0.1:80"}, "--from"},
		{traceFlags{from: "10.0.0.1", to: "10.96.0.1"}, "--to"},
		{traceFlags{from: "10.0.0.1", to: "10.96.0.1:80/icmp"}, "protocol"},
		{traceFlags{from: "fd00::1", to: "10.96.0.1:80"}, "families"},
		{traceFlags{from: "10.0.0.1", to: "10.96.0.1:80", fromFiles: []string{"../trace/testdata/kube-proxy-ipvs.dump"},
			nodeIPs: []string{"x"}}, "--node-ip"},
		{traceFlags{from: "10.0.0.1", to: "10.96.0.1:80", mode: "bogus"}, "--mode"},
	} {
		c.f.timeout = time.Second
		err := runTrace(context.Background(), &bytes.Buffer{}, &c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.f, err, c.want)
		}
	}
}

// With no ebpf mode pinned on the node, --mode ebpf says which maps it could
// not read.
func TestTraceEBPFWithoutPinnedMapsSaysSo(t *testing.T) {
	t.Setenv("KPROXY_EBPF_PIN_DIR", t.TempDir())
	f := traceFlags{from: "10.0.0.1", to: "10.96.0.1:80", mode: "ebpf", timeout: time.Second}
	err := runTrace(context.Background(), &bytes.Buffer{}, &f)
	if err == nil || !strings.Contains(err.Error(), "pinned maps") {
		t.Fatalf("error %v, want one about the pinned maps", err)
	}
}

func TestTraceUserspaceAsksTheDaemon(t *testing.T) {
	vss := []dataplane.VirtualService{{Service: "default/web:http", Protocol: "TCP", Address: "10.96.0.10:80",
		Scheduler: "wrr", RealServers: []dataplane.RealServer{
			{Address: "10.244.1.2:8080", Forward: "Masq", Weight: 3},
			{Address: "10.244.2.2:8080", Forward: "Masq", Weight: 1}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(vss)
	}))
	defer srv.Close()
	r := runTraceJSON(t, &traceFlags{mode: "userspace", adminAddress: strings.TrimPrefix(srv.URL, "http://"),
		from: "10.244.9.9", to: "10.96.0.10:80"})
	got := map[string]float64{}
	for _, c := range r.Candidates {
		got[c.Endpoint] = c.Probability
	}
	if r.Mode != "userspace" || got["10.244.1.2:8080"] != 0.75 || got["10.244.2.2:8080"] != 0.25 {
		t.Errorf("userspace trace: mode %s candidates %v, want 0.75/0.25 by weight", r.Mode, got)
	}
}
