package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkManifestChangeToTraffic measures how long a manifest edit takes to reach
// the traffic: the Service's only endpoint is switched between two backends, and
// each iteration ends when a new connection reaches the new one. It covers the
// file source's debounce, the runner (minSyncPeriod 100ms here) and the userspace
// sync.
func BenchmarkManifestChangeToTraffic(b *testing.B) {
	n := newNet127()
	bport := port()
	backends := []string{n.ip(11), n.ip(12)}
	for _, ip := range backends {
		startBackend(b, fmt.Sprintf("%s:%d", ip, bport))
	}
	s := svcSpec{Name: "web", ClusterIP: n.ip(1), Protocol: "TCP", Port: port(), TargetPort: bport,
		Endpoints: backends[:1]}
	m := &manifests{dir: b.TempDir()}
	m.write(b, "web.yaml", s.yaml(b))
	startProxy(b, n, m.dir)
	reach(b, s.addr(), backends[0])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := backends[(i+1)%2]
		s.Endpoints = []string{target}
		m.write(b, "web.yaml", s.yaml(b))
		reach(b, s.addr(), target)
	}
}

// reach polls until a new connection to addr lands on ip.
func reach(b *testing.B, addr, ip string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := askBackend(addr)
		if err == nil && strings.HasPrefix(got, ip+":") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never reached %s: %q %v", addr, ip, got, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
