package trace

import "testing"

func TestNftablesGolden(t *testing.T) {
	kp := node("192.168.10.5")
	quarter := map[string]float64{"10.244.1.7:8080": .25, "10.244.2.8:8080": .25,
		"10.244.3.9:8080": .25, "10.244.4.10:8080": .25}
	const kpd, kd, pd = "kube-proxy-nftables.dump", "kproxy-nftables.dump", "pinned-affinity-nftables.dump"
	cases := []goldenCase{
		{name: "nft-kp-clusterip-from-node", dump: kpd, from: "192.168.10.5", to: "10.96.12.34:80", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(true, false))},
		{name: "nft-kp-clusterip-hairpin", dump: kpd, from: "10.244.1.7", to: "10.96.12.34:80", in: "cni0", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(false, true))},
		{name: "nft-kp-no-endpoints", dump: kpd, from: "10.244.1.7", to: "10.96.44.10:80", in: "cni0", opts: kp,
			check: wantVerdict("reject", nil)},
		{name: "nft-kp-clusterip-unused-port", dump: kpd, from: "10.244.1.7", to: "10.96.12.34:81", in: "cni0", opts: kp,
			check: wantVerdict("reject", nil)},
		{name: "nft-kp-unallocated-clusterip", dump: kpd, from: "10.244.1.7", to: "10.96.99.99:80", in: "cni0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "nft-kp-nodeport", dump: kpd, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0", opts: kp,
			check: all(wantVerdict("dnat", quarter), wantMasq(true, false))},
		// No service-nodeports element in this dump: the packet loops back into
		// the input hook, where no-endpoint-nodeports drops it.
		{name: "nft-kp-nodeport-from-node-input-check", dump: kpd, from: "192.168.10.5", to: "192.168.10.5:31500", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "nft-kp-nodeport-etp-local-none-local", dump: kpd, from: "198.51.100.20", to: "192.168.10.5:31500", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "nft-kp-lb-allowed", dump: kpd, from: "198.51.100.7", to: "203.0.113.50:443", in: "eth0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.1.30:8443": 1})},
		{name: "nft-kp-lb-denied", dump: kpd, from: "192.0.2.9", to: "203.0.113.50:443", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
		{name: "nft-kp-affinity-new-client", dump: kpd, from: "10.244.9.9", to: "10.96.20.2:80", in: "cni0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.2.21:9000": .5, "10.244.3.22:9000": .5})},
		{name: "nft-kp-affinity-pinned", dump: pd, from: "10.244.9.9", to: "10.96.20.2:80", in: "cni0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.3.22:9000": 1})},
		{name: "nft-kp-not-a-service", dump: kpd, from: "192.168.10.5", to: "10.0.0.9:22", opts: kp,
			check: wantVerdict("accept", nil)},
		{name: "nft-kproxy-pick-chain", dump: kd, from: "10.244.1.5", to: "10.96.0.10:80", in: "cni0", opts: kp,
			check: all(wantVerdict("dnat", map[string]float64{"10.244.1.5:8080": .5, "10.244.2.7:8080": .5}), wantMasq(false, true))},
		{name: "nft-kproxy-rr", dump: kd, from: "192.168.10.5", to: "10.96.0.20:443", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.1.9:8443": .5, "10.244.3.4:8443": .5})},
		{name: "nft-kproxy-cascade-udp", dump: kd, from: "10.244.1.5", to: "10.96.0.30:53/udp", in: "cni0", opts: kp,
			check: wantVerdict("dnat", map[string]float64{"10.244.1.2:53": 1.0 / 3, "10.244.2.2:53": 1.0 / 3, "10.244.3.2:53": 1.0 / 3})},
		{name: "nft-kproxy-nodeport-through-host-firewall", dump: kd, from: "198.51.100.20", to: "192.168.10.5:30080", in: "eth0", opts: kp,
			check: all(wantVerdict("dnat", map[string]float64{"10.244.1.5:8080": .5, "10.244.2.7:8080": .5}), wantMasq(true, false))},
		{name: "nft-kproxy-no-endpoints", dump: kd, from: "192.168.10.5", to: "10.96.0.40:80", opts: kp,
			check: wantVerdict("reject", nil)},
		{name: "nft-kproxy-host-firewall-drops", dump: kd, from: "198.51.100.20", to: "192.168.10.5:8080", in: "eth0", opts: kp,
			check: wantVerdict("drop", nil)},
	}
	runGolden(t, cases, TraceNftables)
}
