package trace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIpvsGolden(t *testing.T) {
	const d = "kube-proxy-ipvs.dump"
	third := map[string]float64{"10.244.1.7:8080": 1.0 / 3, "10.244.2.8:8080": 1.0 / 3, "10.244.3.9:8080": 1.0 / 3}
	cases := []goldenCase{
		{name: "ipvs-clusterip", dump: d, from: "192.168.10.5", to: "10.96.12.34:80", check: wantVerdict("dnat", third)},
		{name: "ipvs-wrr-persistent", dump: d, from: "10.244.9.9", to: "10.96.20.2:80", in: "cni0",
			check: wantVerdict("dnat", map[string]float64{"10.244.2.21:9000": .75, "10.244.3.22:9000": .25})},
		{name: "ipvs-no-real-servers", dump: d, from: "10.244.9.9", to: "10.96.44.10:80", check: wantVerdict("reject", nil)},
		{name: "ipvs-nodeport-weight-zero-drained", dump: d, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0",
			check: wantVerdict("dnat", map[string]float64{"10.244.1.7:8080": .5, "10.244.2.8:8080": .5})},
		{name: "ipvs-udp-sh", dump: d, from: "10.244.9.9", to: "10.96.0.10:53/udp", check: wantVerdict("dnat", nil)},
		{name: "ipvs-not-a-service", dump: d, from: "10.244.9.9", to: "10.96.0.10:53/tcp", check: wantVerdict("accept", nil)},
	}
	runGolden(t, cases, func(text string, p Packet, o Options) (*Result, error) { return TraceText("", text, p, o) })
}

// TestIpvsWithRulesGolden traces ipvs mode with the iptables rules and ipsets
// kube-proxy keeps beside the IPVS table: they decide masquerading and reject
// unserved ports of Service addresses.
func TestIpvsWithRulesGolden(t *testing.T) {
	var rules, sets []byte
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rules, sets = read("kube-proxy-ipvs-iptables.dump"), read("kube-proxy-ipvs.ipset")
	trace := func(text string, p Packet, o Options) (*Result, error) {
		return TraceDumps("", []string{text, string(rules), string(sets)}, p, o)
	}
	third := map[string]float64{"10.244.1.7:8080": 1.0 / 3, "10.244.2.8:8080": 1.0 / 3, "10.244.3.9:8080": 1.0 / 3}
	const d = "kube-proxy-ipvs.dump"
	kp := node("192.168.10.5")
	cases := []goldenCase{
		{name: "ipvs-rules-clusterip-from-node", dump: d, from: "192.168.10.5", to: "10.96.12.34:80", opts: kp,
			check: all(wantVerdict("dnat", third), wantMasq(true, false))},
		{name: "ipvs-rules-hairpin", dump: d, from: "10.244.1.7", to: "10.96.12.34:80", in: "cni0", opts: kp,
			check: all(wantVerdict("dnat", third), wantMasq(false, true))},
		{name: "ipvs-rules-nodeport", dump: d, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0", opts: kp,
			check: all(wantVerdict("dnat", map[string]float64{"10.244.1.7:8080": .5, "10.244.2.8:8080": .5}), wantMasq(true, false))},
		{name: "ipvs-rules-unserved-port", dump: d, from: "10.244.9.9", to: "10.96.12.34:81", in: "cni0", opts: kp,
			check: wantVerdict("reject", nil)},
		{name: "ipvs-rules-no-real-servers", dump: d, from: "10.244.9.9", to: "10.96.44.10:80", in: "cni0", opts: kp,
			check: wantVerdict("reject", nil)},
	}
	runGolden(t, cases, trace)
}

func TestIpsetFormats(t *testing.T) {
	list := "Name: KUBE-LOOP-BACK\nType: hash:ip,port,ip\nRevision: 6\nMembers:\n10.244.1.7,tcp:8080,10.244.1.7\n\nName: KUBE-NODE-PORT-TCP\nType: bitmap:port\nMembers:\n30080\n"
	sets, err := ParseIpset(list)
	if err != nil {
		t.Fatal(err)
	}
	if s := sets["KUBE-LOOP-BACK"]; s == nil || s.Type != "hash:ip,port,ip" || len(s.Members) != 1 {
		t.Errorf("ipset list parsed as %+v", sets["KUBE-LOOP-BACK"])
	}
	if s := sets["KUBE-NODE-PORT-TCP"]; s == nil || len(s.Members) != 1 || s.Members[0] != "30080" {
		t.Errorf("ipset list parsed as %+v", sets["KUBE-NODE-PORT-TCP"])
	}
	if _, err := ParseIpset("add X 1.2.3.4\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("add before create: %v, want an error naming line 1", err)
	}
}

func TestDetect(t *testing.T) {
	for in, want := range map[string]string{
		"# Warning: iptables-legacy tables present\n*nat\n:PREROUTING ACCEPT [0:0]\n": "iptables",
		"[0:0] -A KUBE-SERVICES -j RETURN\n":                                          "iptables",
		"table ip kproxy {\n}\n":                                                      "nftables",
		"IP Virtual Server version 1.2.1 (size=4096)\n":                               "ipvs",
		"TCP  10.96.0.1:443 rr\n":                                                     "ipvs",
	} {
		if got, err := Detect(in); err != nil || got != want {
			t.Errorf("Detect(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Detect("hello world\n"); err == nil || !strings.Contains(err.Error(), "hello world") {
		t.Errorf("Detect of junk: %v, want an error quoting the line", err)
	}
}
