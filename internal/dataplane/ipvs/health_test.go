//go:build linux

package ipvs

import (
	"fmt"
	"net"
	"net/http"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/healthcheck"
)

// An externalTrafficPolicy Local Service's health-check node port answers 200 while
// this node has a local endpoint and 503 once it has none, as kube-proxy's does.
func TestHealthCheckNodePortFollowsLocalEndpoints(t *testing.T) {
	health := healthcheck.New(healthcheck.Options{Addresses: []string{"127.0.0.1"}})
	f := newFixture(t, proxierOptions{}, dataplane.CoreOptions{Health: health})
	t.Cleanup(health.Close)
	port := freeTCPPort(t)
	sp := clusterIP("web", "10.96.0.10", 80, v1.ProtocolTCP)
	sp.Type, sp.NodePort, sp.HealthCheckNodePort, sp.ExternalPolicyLocal = v1.ServiceTypeLoadBalancer, 30080, port, true
	local := ep("10.1.0.1:8080", 1)
	local.IsLocal = true

	f.sync(f.set(sp.Name, sp, local, ep("10.1.0.2:8080", 1)))
	if code := healthStatus(t, port); code != http.StatusOK {
		t.Fatalf("with a local endpoint: status %d, want 200", code)
	}
	f.sync(f.set(sp.Name, sp, ep("10.1.0.2:8080", 1)))
	if code := healthStatus(t, port); code != http.StatusServiceUnavailable {
		t.Fatalf("without a local endpoint: status %d, want 503", code)
	}
	f.sync(f.set(sp.Name, nil))
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Fatal("health-check port still open after the Service went away")
	}
}

func freeTCPPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func healthStatus(t *testing.T, port int32) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
