//go:build linux

package ipvs

import (
	"encoding/json"
	"math"
	"net/netip"
	"os/exec"
	"testing"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/trace"
)

// TestGuestTraceAgreesWithIPVS runs `kproxy trace --mode ipvs` against the IPVS
// table (and the iptables rules and ipsets beside it) the daemon programmed, and
// checks it against where real connections go: wrr 3:1 traces to 0.75 / 0.25 and
// every answering backend is a traced candidate.
func TestGuestTraceAgreesWithIPVS(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	bes := tp.backends("trc", 2, false)
	client := tp.add("trc-cl", "192.168")
	dir := t.TempDir()
	writeManifest(t, dir, manifest{name: "trc", clusterIP: "10.96.6.1", port: 80, nodePort: 30091, target: 8080,
		scheduler: "wrr", endpoints: []string{bes[0].IP.String(), bes[1].IP.String()}, weights: bes[0].IP.String() + "=3"})
	startDaemon(t, dir)
	waitKernel(t, "10.96.6.1:80", func(r dataplane.VirtualService) bool { return len(positive(r)) == 2 })

	out, err := exec.Command(kproxyBinary, "trace", "--mode", "ipvs", "--json", "--from", client.IP.String(),
		"--in-interface", client.NodeLink, "--to", "10.96.6.1:80").CombinedOutput()
	if err != nil {
		t.Fatalf("kproxy trace: %v\n%s", err, out)
	}
	var r trace.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := map[string]float64{
		netip.AddrPortFrom(bes[0].IP, 8080).String(): 0.75,
		netip.AddrPortFrom(bes[1].IP, 8080).String(): 0.25,
	}
	if r.Verdict.Kind != "dnat" || len(r.Candidates) != 2 {
		t.Fatalf("traced %+v with %d candidates, want DNAT over 2\n%s", r.Verdict, len(r.Candidates), out)
	}
	for _, c := range r.Candidates {
		if p, ok := want[c.Endpoint]; !ok || math.Abs(p-c.Probability) > 1e-6 {
			t.Errorf("candidate %s with probability %v, want %v", c.Endpoint, c.Probability, want)
		}
	}
	byName := map[string]string{bes[0].Name: netip.AddrPortFrom(bes[0].IP, 8080).String(),
		bes[1].Name: netip.AddrPortFrom(bes[1].IP, 8080).String()}
	for name := range hits(t, client, "10.96.6.1:80", 8) {
		if _, ok := want[byName[name]]; !ok {
			t.Errorf("a real connection reached %s, not a traced candidate", name)
		}
	}
}
