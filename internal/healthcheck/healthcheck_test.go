package healthcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"kproxy.dev/kproxy/internal/state"
)

func freePort(t *testing.T) int32 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func get(t *testing.T, port int32) (int, response) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

func TestServerAnswersPerLocalEndpoints(t *testing.T) {
	s := New(Options{Addresses: []string{"127.0.0.1"}})
	defer s.Close()
	port := freePort(t)
	key := Service{Namespace: "ns", Name: "web"}
	if err := s.Update(map[Service]Entry{key: {Port: port, LocalEndpoints: 2}}); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, port)
	if code != 200 || body.LocalEndpoints != 2 || !body.ServiceProxyHealthy || body.Service.Name != "web" || body.Service.Namespace != "ns" {
		t.Fatalf("got %d %+v", code, body)
	}
	s.Update(map[Service]Entry{key: {Port: port, LocalEndpoints: 0}})
	if code, body = get(t, port); code != 503 || body.LocalEndpoints != 0 {
		t.Fatalf("no local endpoints: got %d %+v, want 503", code, body)
	}
	s.Update(nil)
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Fatal("port still open after the Service went away")
	}
}

func TestUnhealthyProxyAnswers503(t *testing.T) {
	s := New(Options{Addresses: []string{"127.0.0.1"}, Healthy: func() bool { return false }})
	defer s.Close()
	port := freePort(t)
	s.Update(map[Service]Entry{{Namespace: "ns", Name: "web"}: {Port: port, LocalEndpoints: 1}})
	if code, body := get(t, port); code != 503 || body.ServiceProxyHealthy {
		t.Fatalf("got %d %+v", code, body)
	}
}

func TestEntriesCountLocalReadyOnly(t *testing.T) {
	n := state.ServicePortName{Namespace: "ns", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	other := state.ServicePortName{Namespace: "ns", Name: "plain", Protocol: v1.ProtocolTCP}
	snap := &state.Snapshot{
		ServiceMap: map[state.ServicePortName]*state.ServicePort{
			n:     {Name: n, HealthCheckNodePort: 31000, ExternalPolicyLocal: true},
			other: {Name: other},
		},
		EndpointMap: map[state.ServicePortName][]state.Endpoint{n: {
			{IP: netip.MustParseAddr("10.0.0.1"), Ready: true, IsLocal: true},
			{IP: netip.MustParseAddr("10.0.0.2"), Ready: true},
			{IP: netip.MustParseAddr("10.0.0.3"), Serving: true, Terminating: true, IsLocal: true},
		}},
	}
	got := Entries(snap)
	want := map[Service]Entry{{Namespace: "ns", Name: "web"}: {Port: 31000, LocalEndpoints: 1}}
	if len(got) != 1 || got[Service{"ns", "web"}] != want[Service{"ns", "web"}] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPortInUseIsReportedWithService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	s := New(Options{Addresses: []string{"127.0.0.1"}})
	defer s.Close()
	err = s.Update(map[Service]Entry{{Namespace: "ns", Name: "web"}: {Port: port}})
	if err == nil || !strings.Contains(err.Error(), "ns/web") {
		t.Fatalf("want error naming the service, got %v", err)
	}
}

// Refresh recomputes the ports only when a changed ServicePort is health-checked (or
// on a full sync, or after a failed update); other changes cost no pass over every
// Service. The skip is observable: an endpoint count changed without being listed as
// changed is not picked up.
func TestRefreshSkipsUntouchedChanges(t *testing.T) {
	s := New(Options{Addresses: []string{"127.0.0.1"}})
	defer s.Close()
	port := freePort(t)
	hc := state.ServicePortName{Namespace: "ns", Name: "lb", Port: "p"}
	plain := state.ServicePortName{Namespace: "ns", Name: "web", Port: "p"}
	mk := func(local bool) *state.Snapshot {
		return &state.Snapshot{
			ServiceMap: map[state.ServicePortName]*state.ServicePort{
				hc:    {Name: hc, HealthCheckNodePort: port, ExternalPolicyLocal: true},
				plain: {Name: plain},
			},
			EndpointMap: map[state.ServicePortName][]state.Endpoint{hc: {{Ready: true, IsLocal: local}}},
		}
	}
	with, without := mk(true), mk(false)
	only := func(n state.ServicePortName) map[state.ServicePortName]struct{} {
		return map[state.ServicePortName]struct{}{n: {}}
	}
	if err := s.Refresh(nil, with, nil, false); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, port); code != 200 {
		t.Fatalf("first refresh: %d, want 200", code)
	}
	if err := s.Refresh(with, without, only(plain), false); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, port); code != 200 {
		t.Fatalf("refresh for an unrelated change recomputed the ports: %d", code)
	}
	if err := s.Refresh(with, without, only(hc), false); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, port); code != 503 {
		t.Fatalf("refresh for the health-checked port: %d, want 503", code)
	}
	if err := s.Refresh(without, with, nil, true); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, port); code != 200 {
		t.Fatalf("full refresh: %d, want 200", code)
	}
}

// The body is laid out byte for byte as kube-proxy's, for scripts that match it.
func TestBodyLayoutIsKubeProxys(t *testing.T) {
	s := New(Options{Addresses: []string{"127.0.0.1"}})
	defer s.Close()
	port := freePort(t)
	if err := s.Update(map[Service]Entry{{Namespace: "ns", Name: "web"}: {Port: port, LocalEndpoints: 2}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := "{\n\t\"service\": {\n\t\t\"namespace\": \"ns\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
	if string(b) != want {
		t.Errorf("body %q, want %q", b, want)
	}
	if resp.Header.Get("X-Load-Balancing-Endpoint-Weight") != "2" {
		t.Errorf("weight header %q", resp.Header.Get("X-Load-Balancing-Endpoint-Weight"))
	}
}
