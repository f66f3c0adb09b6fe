package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/source/kube"
	"kproxy.dev/kproxy/internal/state"
	"kproxy.dev/kproxy/internal/testing/fakekube"
)

// fakeDP records syncs; it can fail on demand and list itself.
type fakeDP struct {
	mu       sync.Mutex
	syncs    []*state.Snapshot
	partial  bool // every Sync returns a PartialError
	failNext int
	drained  bool
	synced   chan struct{}
}

func (f *fakeDP) Apply(_ context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failNext > 0 {
		f.failNext--
		return dataplane.Applied{}, errors.New("injected failure")
	}
	f.syncs = append(f.syncs, req.Snapshot)
	select {
	case f.synced <- struct{}{}:
	default:
	}
	if f.partial {
		return dataplane.Applied{}, &dataplane.PartialError{Errs: []error{errors.New("service default/web: no address")}}
	}
	return dataplane.Applied{}, nil
}

func (f *fakeDP) Cleanup(context.Context) error { return nil }

func (f *fakeDP) Drain(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drained = true
	return nil
}

func (f *fakeDP) last() *state.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.syncs) == 0 {
		return nil
	}
	return f.syncs[len(f.syncs)-1]
}

type listingDP struct{ *fakeDP }

func (l listingDP) List(context.Context) ([]dataplane.VirtualService, error) {
	return []dataplane.VirtualService{{Service: "default/web:http", Protocol: "TCP", Address: "127.0.0.1:80", Scheduler: "rr"}}, nil
}

var (
	plainDP      = &fakeDP{synced: make(chan struct{}, 100)}
	listDP       = &fakeDP{synced: make(chan struct{}, 100)}
	kubeDP       = &fakeDP{synced: make(chan struct{}, 100)}
	partialDP    = &fakeDP{synced: make(chan struct{}, 100), partial: true}
	failingDP    = &fakeDP{synced: make(chan struct{}, 100), failNext: 1 << 30}
	errCleanFail = errors.New("rules are stuck")
)

func init() {
	dataplane.Register(dataplane.Mode{Name: "core-fake",
		New:     func(dataplane.Options) (dataplane.Programmer, error) { return plainDP, nil },
		Cleanup: func(context.Context, dataplane.Options) error { return nil }})
	dataplane.Register(dataplane.Mode{Name: "core-fake-failing",
		New:     func(dataplane.Options) (dataplane.Programmer, error) { return failingDP, nil },
		Cleanup: func(context.Context, dataplane.Options) error { return nil }})
	dataplane.Register(dataplane.Mode{Name: "core-fake-partial",
		New:     func(dataplane.Options) (dataplane.Programmer, error) { return partialDP, nil },
		Cleanup: func(context.Context, dataplane.Options) error { return nil }})
	dataplane.Register(dataplane.Mode{Name: "core-fake-kube",
		New:     func(dataplane.Options) (dataplane.Programmer, error) { return kubeDP, nil },
		Cleanup: func(context.Context, dataplane.Options) error { return nil }})
	dataplane.Register(dataplane.Mode{Name: "core-fake-list",
		New:     func(dataplane.Options) (dataplane.Programmer, error) { return listingDP{listDP}, nil },
		Cleanup: func(context.Context, dataplane.Options) error { return errCleanFail }})
}

// chanSource delivers the objects it is given, reports synced, then applies every
// function sent on more.
type chanSource struct {
	initial []func(h state.Handler)
	more    chan func(h state.Handler)
}

func (s *chanSource) Run(ctx context.Context, h state.Handler, synced func()) error {
	for _, f := range s.initial {
		f(h)
	}
	synced()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-s.more:
			f(h)
		}
	}
}

func service(name, ip string) func(state.Handler) {
	return func(h state.Handler) {
		h.UpsertService(&v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
		})
	}
}

func slice(svc, ip string) func(state.Handler) {
	return func(h state.Handler) {
		name, port, proto, ready := "http", int32(8080), v1.ProtocolTCP, true
		h.UpsertEndpointSlice(&discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-1", Labels: map[string]string{discovery.LabelServiceName: svc}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
			Endpoints:   []discovery.Endpoint{{Addresses: []string{ip}, Conditions: discovery.EndpointConditions{Ready: &ready}}},
		})
	}
}

type running struct {
	addrs map[string]string
	done  chan error
	stop  context.CancelFunc
}

func startDaemon(t *testing.T, mode string, src *chanSource, mutate func(*Options)) *running {
	t.Helper()
	c := config.Default()
	c.Mode = kpMode(mode) // past validation: the fake modes are test-only
	c.HealthzBindAddress, c.MetricsBindAddress = "127.0.0.1:0", "127.0.0.1:0"
	c.IPTables.MinSyncPeriod.Duration = 10 * time.Millisecond
	c.HostnameOverride = "node-a"
	r := &running{addrs: map[string]string{}, done: make(chan error, 1)}
	var mu sync.Mutex
	o := Options{Config: c, Source: src, AdminBindAddress: "127.0.0.1:0",
		Flagz: func() map[string]string { return map[string]string{"v": "0"} }, Version: "test",
		Serving: func(name, addr string) { mu.Lock(); r.addrs[name] = addr; mu.Unlock() }}
	if mutate != nil {
		mutate(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(r.addrs)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers not up: %v", r.addrs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitSync(t *testing.T, dp *fakeDP, ok func(*state.Snapshot) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if s := dp.last(); s != nil && ok(s) {
			return
		}
		select {
		case <-dp.synced:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("the dataplane never saw the expected snapshot")
		}
	}
}

func TestDaemonSyncsSourceIntoDataplaneAndServes(t *testing.T) {
	src := &chanSource{initial: []func(state.Handler){service("web", "10.0.0.1"), slice("web", "10.1.0.1")},
		more: make(chan func(state.Handler))}
	r := startDaemon(t, "core-fake", src, nil)
	web := state.ServicePortName{Namespace: "default", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	waitSync(t, plainDP, func(s *state.Snapshot) bool { return len(s.EndpointsOf(web)) == 1 })

	src.more <- service("api", "10.0.0.2")
	api := state.ServicePortName{Namespace: "default", Name: "api", Port: "http", Protocol: v1.ProtocolTCP}
	waitSync(t, plainDP, func(s *state.Snapshot) bool { return s.Service(api) != nil })

	if code, body := get(t, "http://"+r.addrs["metrics"]+"/proxyMode"); code != 200 || body != "core-fake" {
		t.Errorf("/proxyMode = %d %q", code, body)
	}
	code, body := get(t, "http://"+r.addrs["healthz"]+"/healthz")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st["healthy"] != true {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+r.addrs["healthz"]+"/livez"); code != 200 {
		t.Errorf("/livez = %d", code)
	}
	_, metrics := get(t, "http://"+r.addrs["metrics"]+"/metrics")
	for _, want := range []string{"kubeproxy_sync_proxy_rules_service_changes_total 2",
		"kubeproxy_sync_proxy_rules_endpoint_changes_total 1", "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} ",
		"kubeproxy_sync_full_proxy_rules_duration_seconds_count", "kproxy_rejected_objects_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, "http://"+r.addrs["admin"]+"/list"); code != http.StatusNotImplemented {
		t.Errorf("/list for a mode without Lister = %d %q, want 501", code, body)
	}
	// kube-proxy 1.37's metrics-server paths; /list is served there too.
	for path, want := range map[string]string{"/list": "cannot list", "/configz": `{"kubeproxy.config.k8s.io":{`,
		"/flagz": "kproxy flags", "/statusz": "kproxy statusz", "/metrics/slis": "kubernetes_healthcheck"} {
		if path == "/metrics/slis" {
			get(t, "http://"+r.addrs["metrics"]+"/healthz")
		}
		if _, body := get(t, "http://"+r.addrs["metrics"]+path); !strings.Contains(body, want) {
			t.Errorf("metrics %s = %q, want it to contain %q", path, body, want)
		}
	}
	if !strings.Contains(metrics, `kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}`) {
		t.Error("/metrics lacks the ip_family label")
	}
	r.stop()
	if err := <-r.done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	r.done <- nil // for the cleanup
	plainDP.mu.Lock()
	drained := plainDP.drained
	plainDP.mu.Unlock()
	if !drained {
		t.Error("a Drainer dataplane was not drained on shutdown")
	}
}

func TestDaemonRetriesFailedSyncAndListsVirtualServices(t *testing.T) {
	listDP.mu.Lock()
	listDP.failNext = 1
	listDP.mu.Unlock()
	src := &chanSource{initial: []func(state.Handler){service("web", "10.0.0.1")}, more: make(chan func(state.Handler))}
	r := startDaemon(t, "core-fake-list", src, nil)
	web := state.ServicePortName{Namespace: "default", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	// The first sync fails; the retry (after >= 1s backoff) must deliver the Service.
	waitSync(t, listDP, func(s *state.Snapshot) bool { return s.Service(web) != nil })
	code, body := get(t, "http://"+r.addrs["admin"]+"/list")
	var vss []dataplane.VirtualService
	if err := json.Unmarshal([]byte(body), &vss); code != 200 || err != nil || len(vss) != 1 || vss[0].Service != "default/web:http" {
		t.Errorf("/list = %d %q", code, body)
	}
}

func TestNoSourceExplainsBothOptions(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	c := config.Default()
	c.Mode = kpMode("core-fake")
	err := Run(context.Background(), Options{Config: c})
	if !errors.Is(err, ErrNoSource) || !strings.Contains(err.Error(), "--services-from") || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("err = %v", err)
	}
}

func TestUnregisteredModeSaysWhichAreAvailable(t *testing.T) {
	c := config.Default()
	c.Mode = kpMode("nftables") // not linked into this test binary
	err := Run(context.Background(), Options{Config: c, Source: &chanSource{}})
	if err == nil || !strings.Contains(err.Error(), `"nftables" is not available`) || !strings.Contains(err.Error(), "core-fake") {
		t.Errorf("err = %v", err)
	}
}

func TestCleanupReportsEveryMode(t *testing.T) {
	var out bytes.Buffer
	err := Cleanup(context.Background(), config.Default(), &out, nil)
	if err == nil || !strings.Contains(err.Error(), "core-fake-list") || !strings.Contains(err.Error(), "rules are stuck") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(out.String(), "cleanup core-fake: ok") || !strings.Contains(out.String(), "cleanup core-fake-list: FAILED") {
		t.Errorf("output = %q", out.String())
	}
}

func TestNodeEligibility(t *testing.T) {
	now := metav1.Now()
	cases := map[string]struct {
		node *v1.Node
		want bool
	}{
		"plain":    {&v1.Node{}, true},
		"deleting": {&v1.Node{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}}, false},
		"tainted":  {&v1.Node{Spec: v1.NodeSpec{Taints: []v1.Taint{{Key: taintToBeDeleted}}}}, false},
	}
	for name, tc := range cases {
		if got := nodeEligible(tc.node); got != tc.want {
			t.Errorf("%s: eligible = %v, want %v", name, got, tc.want)
		}
	}
}

func kpMode(s string) kpconfig.ProxyMode { return kpconfig.ProxyMode(s) }

func TestHealthzTurnsUnhealthyWhileSyncsFail(t *testing.T) {
	src := &chanSource{initial: []func(state.Handler){service("web", "10.0.0.1")}, more: make(chan func(state.Handler))}
	r := startDaemon(t, "core-fake-failing", src, func(o *Options) {
		// 2 x syncPeriod = 200ms: a queued update older than that is unhealthy.
		o.Config.IPTables.SyncPeriod.Duration = 100 * time.Millisecond
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get(t, "http://"+r.addrs["healthz"]+"/healthz")
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, `"healthy":false`) {
				t.Errorf("503 body = %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz still %d %q while every sync fails", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, "http://"+r.addrs["healthz"]+"/livez"); code != http.StatusServiceUnavailable {
		t.Errorf("/livez = %d, want 503", code)
	}
	// The metrics server's /healthz is kube-proxy's generic one: always "ok".
	if code, body := get(t, "http://"+r.addrs["metrics"]+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("metrics /healthz = %d %q, want 200 ok", code, body)
	}
}

func TestSourceSelection(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	dir := t.TempDir()
	c := config.Default()
	c.ClientConnection.Kubeconfig = dir + "/from-config-file"
	// --services-from wins over a kubeconfig named in the config file.
	src, err := buildSource(Options{Config: c, ServicesFrom: dir}, "n", nil, nil, nil)
	if err != nil || src == nil {
		t.Fatalf("file source: %v", err)
	}
	// Without it, the config file's clientConnection.kubeconfig is used, as kube-proxy does.
	// A missing kubeconfig file is named with the field and the path.
	_, err = buildSource(Options{Config: c}, "n", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "clientConnection.kubeconfig (--kubeconfig): "+dir+"/from-config-file: no such file or directory") {
		t.Errorf("kubeconfig from the config file not used: %v", err)
	}
	if _, err := buildSource(Options{Config: c, ServicesFrom: dir, Kubeconfig: "k"}, "n", nil, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "alternatives") {
		t.Errorf("both flags: %v", err)
	}
}

func TestPartialSyncErrorKeepsHealthyAndRetries(t *testing.T) {
	src := &chanSource{initial: []func(state.Handler){service("web", "10.0.0.1")}, more: make(chan func(state.Handler))}
	r := startDaemon(t, "core-fake-partial", src, nil)
	// With syncPeriod 30s and no new changes, a second sync can only be the
	// runner's retry (after 1s of backoff).
	deadline := time.Now().Add(10 * time.Second)
	for {
		partialDP.mu.Lock()
		n := len(partialDP.syncs)
		partialDP.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d syncs after a partial failure, want retries", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/livez"} {
		if code, body := get(t, "http://"+r.addrs["healthz"]+path); code != 200 {
			t.Errorf("%s = %d %q: a partial failure made the node unhealthy", path, code, body)
		}
	}
	_, m := get(t, "http://"+r.addrs["metrics"]+"/metrics")
	if !strings.Contains(m, "kubeproxy_sync_proxy_rules_last_timestamp_seconds ") ||
		strings.Contains(m, "kubeproxy_sync_proxy_rules_last_timestamp_seconds 0\n") {
		t.Errorf("a partial sync did not count as a sync in /metrics")
	}
}

// TestKubeSourceFeedsTheDataplane runs the daemon on the kube source with a fake
// clientset: the cluster's Service and EndpointSlice reach the dataplane, and a
// Service created later does too.
func TestKubeSourceFeedsTheDataplane(t *testing.T) {
	var svcObj, sliceObj []runtime.Object
	h := &objectCollector{}
	service("web", "10.0.0.1")(h)
	slice("web", "10.1.0.1")(h)
	svcObj, sliceObj = append(svcObj, h.svcs[0]), append(sliceObj, h.slices[0])
	client := fake.NewSimpleClientset(append(svcObj, sliceObj...)...)
	src, err := kube.New(kube.Options{Client: fakekube.New(client), NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Mode = kpMode("core-fake-kube")
	c.HealthzBindAddress, c.MetricsBindAddress = "", ""
	c.IPTables.MinSyncPeriod.Duration = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: c, Source: src}) }()
	defer func() { cancel(); <-done }()
	web := state.ServicePortName{Namespace: "default", Name: "web", Port: "http", Protocol: v1.ProtocolTCP}
	waitSync(t, kubeDP, func(s *state.Snapshot) bool { return len(s.EndpointsOf(web)) == 1 })

	h = &objectCollector{}
	service("api", "10.0.0.2")(h)
	if _, err := client.CoreV1().Services("default").Create(ctx, h.svcs[0], metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	api := state.ServicePortName{Namespace: "default", Name: "api", Port: "http", Protocol: v1.ProtocolTCP}
	waitSync(t, kubeDP, func(s *state.Snapshot) bool { return s.Service(api) != nil })
}

// objectCollector is a state.Handler that keeps the objects, to reuse the
// builders above as API objects.
type objectCollector struct {
	svcs   []*v1.Service
	slices []*discovery.EndpointSlice
}

func (o *objectCollector) UpsertService(s *v1.Service)  { o.svcs = append(o.svcs, s) }
func (o *objectCollector) DeleteService(string, string) {}
func (o *objectCollector) UpsertEndpointSlice(e *discovery.EndpointSlice) {
	o.slices = append(o.slices, e)
}
func (o *objectCollector) DeleteEndpointSlice(string, string) {}
func (o *objectCollector) UpsertNode(*v1.Node)                {}
func (o *objectCollector) DeleteNode(string)                  {}

func TestIPFamiliesFollowClusterCIDR(t *testing.T) {
	for cidr, want := range map[string]string{"": "IPv4", "10.0.0.0/8": "IPv4", "fd00::/48": "IPv6",
		"10.0.0.0/8,fd00::/48": "IPv4,IPv6"} {
		c := config.Default()
		c.ClusterCIDR = cidr
		if got := strings.Join(ipFamilies(c), ","); got != want {
			t.Errorf("clusterCIDR %q: families %s, want %s", cidr, got, want)
		}
	}
}
