package daemon

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// setup starts backends, writes a Service for them and runs kproxy on it.
func setup(t *testing.T, nBackends int, mutate func(*svcSpec)) (*proxy, *manifests, svcSpec, net127) {
	t.Helper()
	n := newNet127()
	bport := port()
	s := svcSpec{Name: "web", ClusterIP: n.ip(1), Protocol: "TCP", Port: port(), TargetPort: bport}
	for i := 0; i < nBackends; i++ {
		b := startBackend(t, fmt.Sprintf("%s:%d", n.ip(11+i), bport))
		s.Endpoints = append(s.Endpoints, strings.Split(b.name, ":")[0])
	}
	if mutate != nil {
		mutate(&s)
	}
	m := newManifests(t)
	m.write(t, "web.yaml", s.yaml(t))
	p := startProxy(t, n, m.dir)
	if s.Protocol == "TCP" {
		waitFor(t, 10*time.Second, "the Service to answer", func() error {
			_, err := askBackend(s.addr())
			return err
		})
	}
	return p, m, s, n
}

func TestRoundRobinAcrossEndpoints(t *testing.T) {
	_, _, s, _ := setup(t, 3, nil)
	counts := map[string]int{}
	var order []string
	for i := 0; i < 9; i++ {
		b, err := askBackend(s.addr())
		if err != nil {
			t.Fatal(err)
		}
		counts[b]++
		order = append(order, b)
	}
	if len(counts) != 3 {
		t.Fatalf("9 connections reached %d backends, want 3: %v", len(counts), order)
	}
	for b, n := range counts {
		if n != 3 {
			t.Errorf("backend %s got %d of 9 connections, want 3 (round-robin): %v", b, n, order)
		}
	}
	// Round-robin is a rotation: the sequence repeats every 3 connections.
	for i := 3; i < len(order); i++ {
		if order[i] != order[i-3] {
			t.Errorf("connection %d went to %s, want %s (rotation): %v", i, order[i], order[i-3], order)
			break
		}
	}
}

func TestClientIPAffinity(t *testing.T) {
	_, _, s, n := setup(t, 3, func(s *svcSpec) { s.Affinity = true })
	for _, client := range []string{n.ip(101), n.ip(102)} {
		first := ""
		for i := 0; i < 6; i++ {
			c, err := dialFrom(client, s.addr())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if first == "" {
				first = c.backend
			} else if c.backend != first {
				t.Errorf("client %s: connection %d reached %s, want %s (ClientIP affinity)", client, i, c.backend, first)
			}
		}
	}
}

func TestRemovedEndpointStopsGettingNewConnectionsButOpenOnesSurvive(t *testing.T) {
	_, m, s, _ := setup(t, 2, nil)
	// Hold one connection to each backend.
	open := map[string]*conn{}
	for i := 0; i < 4 && len(open) < 2; i++ {
		c, err := dial(s.addr())
		if err != nil {
			t.Fatal(err)
		}
		if open[c.backend] != nil {
			c.Close()
			continue
		}
		open[c.backend] = c
		defer c.Close()
	}
	if len(open) != 2 {
		t.Fatalf("could not reach both backends: %v", open)
	}
	removed := s.Endpoints[1]
	kept := s.Endpoints[0]
	s.Endpoints = []string{kept}
	m.write(t, "web.yaml", s.yaml(t))

	time.Sleep(2 * time.Second)
	for i := 0; i < 6; i++ {
		b, err := askBackend(s.addr())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(b, removed+":") {
			t.Fatalf("connection %d reached the removed endpoint %s 2s after its removal", i, removed)
		}
	}
	for name, c := range open {
		if err := c.echo("still there"); err != nil {
			t.Errorf("the open connection to %s broke after the endpoint change: %v", name, err)
		}
	}
}

func TestMalformedManifestKeepsPreviousServices(t *testing.T) {
	p, m, s, _ := setup(t, 2, nil)
	m.write(t, "web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web\n  this is: [not yaml\n")
	waitFor(t, 5*time.Second, "the rejected file to be counted", func() error {
		_, body, err := httpGet("http://" + p.metrics + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `kproxy_rejected_objects_total{kind="File"} 1`) {
			return fmt.Errorf("no File rejection in /metrics")
		}
		return nil
	})
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		b, err := askBackend(s.addr())
		if err != nil {
			t.Fatalf("the Service stopped serving after a malformed manifest: %v", err)
		}
		seen[b] = true
	}
	if len(seen) != 2 {
		t.Errorf("after a malformed manifest the Service reaches %v, want both backends", seen)
	}
	select {
	case <-p.exited:
		t.Fatal("kproxy exited on a malformed manifest")
	default:
	}
}

func TestUDP(t *testing.T) {
	_, _, s, _ := setup(t, 2, func(s *svcSpec) { s.Protocol = "UDP" })
	seen := map[string]bool{}
	waitFor(t, 10*time.Second, "UDP replies from both backends", func() error {
		c, err := net.Dial("udp", s.addr())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 512)
		k, err := c.Read(buf)
		if err != nil {
			return err
		}
		reply := string(buf[:k])
		name, msg, ok := strings.Cut(reply, ": ")
		if !ok || msg != "ping" {
			return fmt.Errorf("unexpected reply %q", reply)
		}
		seen[name] = true
		if len(seen) < 2 {
			return fmt.Errorf("replies only from %v", seen)
		}
		return nil
	})
}

func TestMetricsHealthzLivezProxyMode(t *testing.T) {
	p, _, _, _ := setup(t, 1, nil)
	code, body, err := httpGet("http://" + p.metrics + "/proxyMode")
	if err != nil || code != 200 || body != "userspace" {
		t.Errorf("/proxyMode = %d %q %v", code, body, err)
	}
	// The metrics address's /healthz is kube-proxy's generic one.
	if code, body, err := httpGet("http://" + p.metrics + "/healthz"); err != nil || code != 200 || body != "ok" {
		t.Errorf("metrics /healthz = %d %q %v", code, body, err)
	}
	for _, url := range []string{p.healthz + "/healthz", p.healthz + "/livez"} {
		code, body, err := httpGet("http://" + url)
		if err != nil || code != 200 {
			t.Errorf("%s = %d %v", url, code, err)
			continue
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Errorf("%s: body %q is not JSON", url, body)
			continue
		}
		for _, k := range []string{"lastUpdated", "currentTime", "healthy"} {
			if _, ok := st[k]; !ok {
				t.Errorf("%s lacks %q: %s", url, k, body)
			}
		}
		if st["healthy"] != true {
			t.Errorf("%s: not healthy: %s", url, body)
		}
	}
	_, metrics, err := httpGet("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"kubeproxy_sync_proxy_rules_duration_seconds_bucket",
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
		"kubeproxy_sync_proxy_rules_service_changes_total 1",
		"kubeproxy_sync_proxy_rules_service_changes_pending 0",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total 1",
		"kubeproxy_sync_proxy_rules_endpoint_changes_pending 0",
		"kubeproxy_network_programming_duration_seconds",
		"kproxy_rejected_objects_total",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

// TestOOMScoreAdjApplied raises the value, which needs no privilege: lowering it
// (kube-proxy's default -999) needs CAP_SYS_RESOURCE, which containers often lack.
func TestOOMScoreAdjApplied(t *testing.T) {
	n := newNet127()
	m := newManifests(t)
	p := startProxy(t, n, m.dir, "--oom-score-adj", "500")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "500" {
		t.Errorf("kproxy's oom_score_adj = %s, want 500 from --oom-score-adj", got)
	}
}

func TestListFromAdminEndpoint(t *testing.T) {
	p, _, s, _ := setup(t, 2, nil)
	code, body, err := httpGet("http://" + p.admin + "/list")
	if err != nil || code != 200 {
		t.Fatalf("/list = %d %v", code, err)
	}
	var vss []struct {
		Service     string `json:"service"`
		Address     string `json:"address"`
		RealServers []struct {
			Address string `json:"address"`
		} `json:"realServers"`
	}
	if err := json.Unmarshal([]byte(body), &vss); err != nil {
		t.Fatalf("/list body %q: %v", body, err)
	}
	i := slices.IndexFunc(vss, func(v struct {
		Service     string `json:"service"`
		Address     string `json:"address"`
		RealServers []struct {
			Address string `json:"address"`
		} `json:"realServers"`
	}) bool {
		return v.Address == s.addr()
	})
	if i < 0 || len(vss[i].RealServers) != 2 {
		t.Errorf("/list has no %s with 2 real servers: %s", s.addr(), body)
	}
}

// TestSIGTERMKeepsAcceptingWhileDraining: on SIGTERM the userspace relay goes on
// accepting while a connection is open (so that a successor can take its
// addresses over without a refusal, see the userspace README), and exits once the
// last connection has closed and no new one came for a second.
func TestSIGTERMKeepsAcceptingWhileDraining(t *testing.T) {
	p, _, s, _ := setup(t, 2, nil)
	c, err := dial(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 15; i++ {
		if _, err := askBackend(s.addr()); err != nil {
			t.Fatalf("new connection %d after SIGTERM: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.echo("draining"); err != nil {
		t.Errorf("the open connection broke on SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
		t.Fatal("kproxy exited while a connection was open")
	default:
	}
	c.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Error("kproxy did not exit once its last connection closed")
	}
	if _, err := askBackend(s.addr()); err == nil {
		t.Error("a connection was accepted after kproxy exited")
	}
}

func TestBadConfigAndMissingSourceFailClearly(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("kind: KubeProxyConfiguration\niptables:\n  syncPeriodd: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"no apiVersion":  {[]string{"--config", cfg}, `apiVersion: required`},
		"invalid value":  {[]string{"--iptables-sync-period", "-1s"}, "iptables.syncPeriod: must be greater than 0"},
		"unknown mode":   {[]string{"--proxy-mode", "foo"}, `mode: unknown proxy mode "foo"`},
		"no source":      {[]string{"--proxy-mode", "userspace", "--healthz-bind-address", "", "--metrics-bind-address", "", "--admin-bind-address", ""}, "--services-from"},
		"missing source": {[]string{"--proxy-mode", "userspace", "--services-from", filepath.Join(dir, "nope")}, "nope"},
	}
	for name, tc := range cases {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = append(os.Environ(), "KUBERNETES_SERVICE_HOST=")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: kproxy exited 0", name)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: output %q lacks %q", name, out, tc.want)
		}
	}
}
