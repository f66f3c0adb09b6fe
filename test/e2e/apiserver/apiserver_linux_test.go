//go:build linux && e2e_apiserver

package apiserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kproxy.dev/kproxy/internal/testing/netns"
)

const nodeName = "node-a"

// suite is one node namespace holding the control plane and kproxy, two backend
// "pods" and an off-cluster client.
type suite struct {
	t        *testing.T
	env      *netns.Env
	backends []*netns.NS
	client   *netns.NS
	cp       *controlPlane
	kproxy   *process
	// wait bounds each eventually; client-go's re-list backoff after an API server
	// outage needs longer than a watch event.
	wait time.Duration
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	s := &suite{t: t, env: netns.New(t, "apisrv"), wait: 20 * time.Second}
	for i := 0; i < 2; i++ {
		be := s.env.AddBackend(fmt.Sprintf("be%d", i))
		be.ServeTCP(t, backendPort)
		s.backends = append(s.backends, be)
	}
	s.client = s.env.AddClient("client")
	s.env.Node.MustRun(t, "ip", "route", "add", "default", "via", s.client.IP.String())
	s.cp = startControlPlane(t, s.env.Node, s.client.NodeIP.String())
	ctx := context.Background()
	// kproxy's user may do what kube-proxy's may, nothing more.
	_, err := s.cp.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-kproxy-node-proxier"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-proxier"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "kproxy"}},
	}, metav1.CreateOptions{})
	must(t, "bind kproxy to system:node-proxier", err)
	for _, n := range []string{nodeName, "node-b"} {
		_, err := s.cp.admin.CoreV1().Nodes().Create(ctx, node(n), metav1.CreateOptions{})
		must(t, "create Node "+n, err)
	}
	return s
}

// startKproxy runs the kproxy binary in the node namespace in nftables mode, with
// the kubeconfig of the node-proxier user, configured as kubeadm configures
// kube-proxy (clientConnection.kubeconfig) and by flag.
func (s *suite) startKproxy() {
	t := s.t
	conf := filepath.Join(t.TempDir(), "config.conf")
	cfg := "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n" +
		"clusterCIDR: 10.244.0.0/16\nclientConnection:\n  kubeconfig: " + s.cp.kproxyKubeconfig + "\n" +
		"metricsBindAddress: 127.0.0.1:10249\nhealthzBindAddress: 127.0.0.1:10256\n" +
		"nftables:\n  syncPeriod: 5s\n  minSyncPeriod: 0s\n"
	must(t, "write config", os.WriteFile(conf, []byte(cfg), 0o644))
	s.kproxy = startProcess(t, s.env.Node, "kproxy", kproxyBin, "--config", conf,
		"--kubeconfig", s.cp.kproxyKubeconfig, "--hostname-override", nodeName, "--v", "2")
	t.Cleanup(func() {
		s.kproxy.stop()
		if t.Failed() {
			t.Logf("kproxy log (tail):\n%s", s.kproxy.tail(80))
			out, _ := s.env.Node.Run("nft", "list", "ruleset")
			t.Logf("nftables ruleset:\n%s", out)
		}
	})
}

func (s *suite) eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	if err := netns.Eventually(context.Background(), s.wait, f); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// answersFrom asks addr from the client until every wanted backend has answered,
// and no other.
func (s *suite) answersFrom(t *testing.T, addr string, want ...*netns.NS) {
	t.Helper()
	names := map[string]bool{}
	for _, b := range want {
		names[b.Name] = true
	}
	s.eventually(t, "answers from "+fmt.Sprint(names)+" at "+addr, func() error {
		seen := map[string]bool{}
		for i := 0; i < 20; i++ {
			got, err := s.client.AskTCP(addr, time.Second)
			if err != nil {
				return err
			}
			if !names[got] {
				return fmt.Errorf("answer from %q", got)
			}
			seen[got] = true
		}
		if len(seen) < len(names) {
			return fmt.Errorf("only %v answered", seen)
		}
		return nil
	})
}

// unanswered waits until addr no longer answers.
func (s *suite) unanswered(t *testing.T, addr string) {
	t.Helper()
	s.eventually(t, addr+" stops answering", func() error {
		if got, err := s.client.AskTCP(addr, 500*time.Millisecond); err == nil {
			return fmt.Errorf("still answered by %s", got)
		}
		return nil
	})
}

func (s *suite) ruleset() string {
	out, _ := s.env.Node.Run("nft", "list", "table", "ip", "kproxy")
	return out
}

func TestKproxyAgainstRealAPIServer(t *testing.T) {
	netns.RequireRoot(t)
	s := newSuite(t)
	ctx := context.Background()
	be0, be1 := s.backends[0], s.backends[1]

	t.Run("kproxy user has node-proxier rights only", func(t *testing.T) {
		_, err := s.cp.kproxy.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		must(t, "list Services as kproxy", err)
		_, err = s.cp.kproxy.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list Secrets as kproxy: %v, want Forbidden", err)
		}
	})

	create(t, s.cp.admin, service("web", "10.96.0.10", 80, nil), endpointSlice("web", ipsOf(be0, be1), nil))
	s.startKproxy()

	t.Run("Services and EndpointSlices through the watch", func(t *testing.T) {
		s.answersFrom(t, "10.96.0.10:80", be0, be1)
		create(t, s.cp.admin, service("later", "10.96.0.11", 80, nil), endpointSlice("later", ipsOf(be1), nil))
		s.answersFrom(t, "10.96.0.11:80", be1)
	})

	t.Run("EndpointSlice update", func(t *testing.T) {
		patch := fmt.Sprintf(`{"endpoints":[{"addresses":["%s"],"conditions":{"ready":true},"nodeName":"node-b"}]}`, be0.IP)
		_, err := s.cp.admin.DiscoveryV1().EndpointSlices("default").Patch(ctx, "web-1", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		must(t, "patch EndpointSlice web-1", err)
		s.answersFrom(t, "10.96.0.10:80", be0)
	})

	t.Run("Service update", func(t *testing.T) {
		patch := `[{"op":"replace","path":"/spec/ports/0/port","value":81}]`
		_, err := s.cp.admin.CoreV1().Services("default").Patch(ctx, "web", types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
		must(t, "patch Service web", err)
		s.answersFrom(t, "10.96.0.10:81", be0)
		s.unanswered(t, "10.96.0.10:80")
	})

	t.Run("headless Services and other proxies' Services are ignored", func(t *testing.T) {
		headless := map[string]string{corev1.IsHeadlessService: ""}
		create(t, s.cp.admin, service("headless-svc", corev1.ClusterIPNone, 80, nil), endpointSlice("headless-svc", ipsOf(be0), headless))
		other := map[string]string{"service.kubernetes.io/service-proxy-name": "another-proxy"}
		create(t, s.cp.admin, service("proxied-elsewhere", "10.96.0.30", 80, other), endpointSlice("proxied-elsewhere", ipsOf(be0), nil))
		// A Service created after both: once it answers, kproxy has seen them.
		create(t, s.cp.admin, service("sentinel", "10.96.0.31", 80, nil), endpointSlice("sentinel", ipsOf(be1), nil))
		s.answersFrom(t, "10.96.0.31:80", be1)
		if _, err := s.client.AskTCP("10.96.0.30:80", 500*time.Millisecond); err == nil {
			t.Error("a Service labelled service.kubernetes.io/service-proxy-name answered")
		}
		rules := s.ruleset()
		for _, name := range []string{"headless-svc", "proxied-elsewhere"} {
			if strings.Contains(rules, name) {
				t.Errorf("kproxy programmed %s:\n%s", name, rules)
			}
		}
	})

	t.Run("Service delete", func(t *testing.T) {
		must(t, "delete Service later", s.cp.admin.CoreV1().Services("default").Delete(ctx, "later", metav1.DeleteOptions{}))
		s.unanswered(t, "10.96.0.11:80")
	})

	t.Run("kube-apiserver restarted", func(t *testing.T) {
		before := len(s.kproxy.logs.String())
		s.cp.apiserver.stop()
		brokeRE := regexp.MustCompile(`(?im)^.*(connection refused|watch .*(ended|closed|failed)|failed to (list|watch)).*$`)
		// Down until kproxy has seen it: a watch that ends cleanly is re-opened
		// without a word, so the break shows once a re-watch or re-list fails.
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if brokeRE.MatchString(s.kproxy.logs.String()[before:]) {
				break
			}
		}
		if !s.kproxy.running() {
			t.Fatalf("kproxy exited when the API server went away:\n%s", s.kproxy.tail(40))
		}
		// The rules stay while the API server is away.
		s.answersFrom(t, "10.96.0.10:81", be0)
		s.cp.startAPIServer()
		s.wait = 90 * time.Second
		defer func() { s.wait = 20 * time.Second }()
		create(t, s.cp.admin, service("after-restart", "10.96.0.40", 80, nil), endpointSlice("after-restart", ipsOf(be0, be1), nil))
		s.answersFrom(t, "10.96.0.40:80", be0, be1)
		if !s.kproxy.running() {
			t.Fatal("kproxy exited")
		}
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if strings.Contains(s.kproxy.logs.String()[before:], "watch restored") {
				break
			}
		}
		logs := s.kproxy.logs.String()[before:]
		broke := brokeRE.FindString(logs)
		if broke == "" {
			t.Errorf("kproxy logged nothing about the broken watches:\n%s", logs)
		}
		t.Logf("kproxy on the outage: %s", broke)
		if !strings.Contains(logs, "watch restored") {
			t.Errorf("kproxy did not log the watches' recovery (\"watch restored\"):\n%s", logs)
		}
	})

	t.Run("deploy manifests accepted by the API server", func(t *testing.T) {
		testDeployManifests(t, s.cp)
	})
}
