//go:build linux && e2e_apiserver

package apiserver

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kproxy.dev/kproxy/internal/testing/netns"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

// process is one long-running program inside a namespace, its output kept.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	logs *syncbuf.Buffer
}

func startProcess(t *testing.T, ns *netns.NS, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = ns.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits (SIGKILL after 20s).
func (p *process) stop() {
	if p == nil || !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of the output.
func (p *process) tail(n int) string {
	lines := strings.Split(p.logs.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// controlPlane is etcd and kube-apiserver inside the node namespace.
type controlPlane struct {
	t         *testing.T
	node      *netns.NS
	pki       *pki
	advertise string
	etcd      *process
	apiserver *process
	// kubeconfigs for the admin (system:masters) and for kproxy (its own user,
	// bound to system:node-proxier only).
	adminKubeconfig, kproxyKubeconfig string
	admin                             kubernetes.Interface
	kproxy                            kubernetes.Interface
}

const apiserverPort = 6443

func startControlPlane(t *testing.T, node *netns.NS, advertise string) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(advertise), net.ParseIP("10.96.0.1")}
	for _, err := range []error{
		p.issue("apiserver", "kube-apiserver", nil, ips),
		p.issue("admin", "e2e-admin", []string{"system:masters"}, nil),
		p.issue("kproxy", "kproxy", nil, nil),
		p.serviceAccountKey(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	cp := &controlPlane{t: t, node: node, pki: p, advertise: advertise}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiserverPort)
	if cp.adminKubeconfig, err = p.kubeconfig("admin", server); err != nil {
		t.Fatal(err)
	}
	if cp.kproxyKubeconfig, err = p.kubeconfig("kproxy", server); err != nil {
		t.Fatal(err)
	}
	cp.etcd = startProcess(t, node, "etcd", bins.etcd, "--name", "e2e", "--data-dir", dir+"/etcd",
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "e2e=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level", "warn")
	t.Cleanup(func() {
		cp.apiserver.stop()
		cp.etcd.stop()
		if t.Failed() {
			t.Logf("etcd log (tail):\n%s", cp.etcd.tail(30))
			if cp.apiserver != nil {
				t.Logf("kube-apiserver log (tail):\n%s", cp.apiserver.tail(60))
			}
		}
	})
	cp.admin = cp.client(cp.adminKubeconfig)
	cp.kproxy = cp.client(cp.kproxyKubeconfig)
	cp.startAPIServer()
	return cp
}

// startAPIServer starts kube-apiserver (again, after a stop) and waits until ready.
func (cp *controlPlane) startAPIServer() {
	cp.t.Helper()
	p := cp.pki
	cp.apiserver = startProcess(cp.t, cp.node, "kube-apiserver", bins.apiserver,
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0", "--secure-port", fmt.Sprint(apiserverPort), "--advertise-address", cp.advertise,
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"), "--cert-dir", p.dir,
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--allow-privileged=true", "--profiling=false")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		if !cp.apiserver.running() {
			cp.t.Fatalf("kube-apiserver exited:\n%s", cp.apiserver.tail(40))
		}
		body, err := cp.admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			return
		}
		lastErr = fmt.Errorf("readyz: %v: %s", err, body)
		time.Sleep(250 * time.Millisecond)
	}
	cp.t.Fatalf("kube-apiserver not ready after 90s: %v", lastErr)
}

// restConfig dials from inside the node namespace, where the API server listens.
func (cp *controlPlane) restConfig(kubeconfig string) *rest.Config {
	cp.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		cp.t.Fatal(err)
	}
	cfg.Dial = func(_ context.Context, network, addr string) (net.Conn, error) {
		return cp.node.Dial(network, addr, 5*time.Second)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

func (cp *controlPlane) client(kubeconfig string) kubernetes.Interface {
	cp.t.Helper()
	c, err := kubernetes.NewForConfig(cp.restConfig(kubeconfig))
	if err != nil {
		cp.t.Fatal(err)
	}
	return c
}

// kubectl runs kubectl as the admin inside the node namespace.
func (cp *controlPlane) kubectl(stdin string, args ...string) (string, error) {
	cmd := cp.node.Command(bins.kubectl, append([]string{"--kubeconfig", cp.adminKubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// binaries are the control plane's programs, from scripts/build-apiserver.sh.
type binaries struct{ apiserver, kubectl, etcd string }

var bins binaries

// buildBinaries runs the build script (a no-op when its cache holds the versions)
// and reads the paths it prints.
func buildBinaries(script string) (binaries, error) {
	cmd := exec.Command("sh", script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return binaries{}, fmt.Errorf("%s: %w", script, err)
	}
	var b binaries
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "KUBE_APISERVER":
			b.apiserver = v
		case "KUBECTL":
			b.kubectl = v
		case "ETCD":
			b.etcd = v
		}
	}
	if b.apiserver == "" || b.kubectl == "" || b.etcd == "" {
		return b, fmt.Errorf("%s printed no binary paths:\n%s", script, out)
	}
	return b, nil
}
