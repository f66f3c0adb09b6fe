package trace

import (
	"net/netip"
	"testing"
)

func TestIptablesGolden(t *testing.T) {
	kp := node("192.168.10.5")
	pinned := node("192.168.10.5")
	pinned.Recent = map[string][]netip.Addr{
		"KUBE-SEP-CARTB2V7K3J5PW2L": {netip.MustParseAddr("10.244.9.9")},
		"KUBE-SEP-CARTA1XQ4DGBRMOE": {netip.MustParseAddr("10.244.9.10")},
	}
	quarter := map[string]float64{"10.244.1.7:8080": .25, "10.244.2.8:8080": .25,
		"10.244.3.9:8080": .25, "10.244.4.10:8080": .25}
	half := map[string]float64{"10.244.1.7:8080": .5, "10.244.2.8:8080": .5}
	const kpd, fd = "kube-proxy-iptables.dump", "foreign-iptables.dump"
	cases := []goldenCase{
		{name: "ipt-kp-clusterip-from-node", dump: kpd, from: "192.168.10.5", to: "10.96.12.34:80", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(true, false))},
		{name: "ipt-kp-clusterip-json", dump: kpd, from: "192.168.10.5", to: "10.96.12.34:80", opts: kp, json: true},
		{name: "ipt-kp-clusterip-hairpin", dump: kpd, from: "10.244.1.7", to: "10.96.12.34:80/tcp", in: "cni0", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(false, true))},
		{name: "ipt-kp-no-endpoints", dump: kpd, from: "10.244.1.7", to: "10.96.44.10:80", in: "cni0", opts: kp,
			check: wantVerdict("reject", map[string]float64{"": 1})},
		{name: "ipt-kp-nodeport", dump: kpd, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(true, false))},
		// The node's own traffic short-circuits eTP=Local to the cluster-wide chain.
		{name: "ipt-kp-nodeport-from-node-etp-local", dump: kpd, from: "192.168.10.5", to: "192.168.10.5:31500", opts: kp,
			check: all(wantVerdict("dnat", map[string]float64{"10.244.4.9:8080": 1}), wantMasq(true, false))},
		{name: "ipt-kp-nodeport-etp-local-none-local", dump: kpd, from: "198.51.100.20", to: "192.168.10.5:31500", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "ipt-kp-lb-allowed", dump: kpd, from: "198.51.100.7", to: "203.0.113.50:443", in: "eth0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.1.30:8443": 1})},
		{name: "ipt-kp-lb-denied", dump: kpd, from: "192.0.2.9", to: "203.0.113.50:443", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "ipt-kp-affinity-new-client", dump: kpd, from: "10.244.9.9", to: "10.96.20.2:80", in: "cni0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.2.21:9000": .5, "10.244.3.22:9000": .5})},
		{name: "ipt-kp-affinity-pinned", dump: kpd, from: "10.244.9.9", to: "10.96.20.2:80", in: "cni0", opts: pinned,
			check: wantVerdict("dnat", map[string]float64{"10.244.3.22:9000": 1})},
		{name: "ipt-kp-not-a-service", dump: kpd, from: "192.168.10.5", to: "10.0.0.9:22", opts: kp,
			check: wantVerdict("accept", nil)},
		{name: "ipt-kp-udp-not-matching-tcp-service", dump: kpd, from: "192.168.10.5", to: "10.96.12.34:80/udp", opts: kp,
			check: wantVerdict("accept", nil)},
		{name: "ipt-kp-offline-node-address-unknown", dump: kpd, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0",
			check: wantVerdict("accept", nil)},
		{name: "ipt-foreign-nodeport", dump: fd, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0", opts: kp,
			check: all(wantVerdict("dnat", half), wantMasq(true, false))},
		{name: "ipt-foreign-pod-to-service", dump: fd, from: "10.244.1.5", to: "10.96.12.34:80", in: "cni0", opts: kp,
			check: all(wantVerdict("dnat", half), wantMasq(false, false))},
		{name: "ipt-foreign-firewall-drops", dump: fd, from: "198.51.100.20", to: "192.168.10.5:8080", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "ipt-foreign-calico-dnat", dump: fd, from: "198.51.100.20", to: "172.31.9.9:80", in: "eth0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.1.99:80": 1})},
	}
	runGolden(t, cases, TraceIptables)
}

func all(fs ...func(*testing.T, *Result)) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		t.Helper()
		for _, f := range fs {
			f(t, r)
		}
	}
}

func wantMasq(all, some bool) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		t.Helper()
		if r.Masquerade != all || r.MasqueradeSome != some {
			t.Errorf("masquerade=%v some=%v, want %v %v", r.Masquerade, r.MasqueradeSome, all, some)
		}
	}
}
