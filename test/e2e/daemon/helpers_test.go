package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// binary is the kproxy binary built once by TestMain, as a user would build it.
var binary string

// repoRoot is the module root, where the README and examples live.
var repoRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := build(dir, m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string, m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go env GOMOD:", err)
		return 1
	}
	repoRoot = filepath.Dir(strings.TrimSpace(string(out)))
	binary = filepath.Join(dir, "kproxy")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/kproxy")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kproxy: %v\n%s", err, b)
		return 1
	}
	return m.Run()
}

// net127 is a random 127.X.Y.0/24 for one test, so that tests (and other
// packages' tests) running at the same time do not collide on addresses.
type net127 struct{ x, y int }

func newNet127() net127 { return net127{x: 100 + rand.IntN(150), y: 1 + rand.IntN(250)} }

func (n net127) ip(z int) string { return fmt.Sprintf("127.%d.%d.%d", n.x, n.y, z) }

// port is a random high port; with a private /24 per test, collisions are unlikely.
func port() int { return 20000 + rand.IntN(30000) }

// backend is a TCP and UDP server on one address. Every TCP connection first gets
// "name\n" and then an echo of what it sends; every UDP datagram is answered with
// "name: datagram".
type backend struct {
	name string
	ln   net.Listener
	pc   net.PacketConn
}

func startBackend(t testing.TB, addr string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: addr, ln: ln, pc: pc}
	go b.serveTCP()
	go b.serveUDP()
	t.Cleanup(func() { ln.Close(); pc.Close() })
	return b
}

func (b *backend) serveTCP() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\n", b.name)
			_, _ = io.Copy(c, c)
		}()
	}
}

func (b *backend) serveUDP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := b.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = b.pc.WriteTo(fmt.Appendf(nil, "%s: %s", b.name, buf[:n]), from)
	}
}

// conn is a client connection through the proxy that knows which backend it reached.
type conn struct {
	net.Conn
	r       *bufio.Reader
	backend string
}

func dial(addr string) (*conn, error) { return dialFrom("", addr) }

func dialFrom(local, addr string) (*conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the backend's name through %s: %w", addr, err)
	}
	_ = c.SetDeadline(time.Time{})
	return &conn{Conn: c, r: r, backend: strings.TrimSpace(name)}, nil
}

// echo sends a line and checks that it comes back.
func (c *conn) echo(line string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != line {
		return fmt.Errorf("echo: got %q, want %q", got, line)
	}
	return nil
}

// askBackend opens one connection and returns the backend it reached.
func askBackend(addr string) (string, error) {
	c, err := dial(addr)
	if err != nil {
		return "", err
	}
	c.Close()
	return c.backend, nil
}

// waitFor polls f until it succeeds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// manifests writes Service and EndpointSlice YAML into a directory kproxy watches.
type manifests struct {
	dir string
}

func newManifests(t testing.TB) *manifests {
	return &manifests{dir: t.TempDir()}
}

// write replaces a file atomically (write, then rename), as a careful tool would,
// so that kproxy never reads a half-written file.
func (m *manifests) write(t testing.TB, name, body string) {
	t.Helper()
	tmp := filepath.Join(m.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// svcSpec describes one Service with one port and its endpoints.
type svcSpec struct {
	Name      string
	ClusterIP string
	Protocol  string
	Port      int
	// TargetPort is the endpoints' port.
	TargetPort int
	Endpoints  []string
	Affinity   bool
}

var svcTemplate = template.Must(template.New("svc").Parse(`apiVersion: v1
kind: Service
metadata:
  name: {{.Name}}
  namespace: e2e
spec:
  type: ClusterIP
  clusterIP: {{.ClusterIP}}
  clusterIPs: [{{.ClusterIP}}]
{{- if .Affinity}}
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 600
{{- end}}
  ports:
  - name: p
    protocol: {{.Protocol}}
    port: {{.Port}}
    targetPort: {{.TargetPort}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {{.Name}}-1
  namespace: e2e
  labels:
    kubernetes.io/service-name: {{.Name}}
addressType: IPv4
ports:
- name: p
  protocol: {{.Protocol}}
  port: {{.TargetPort}}
endpoints:
{{- range .Endpoints}}
- addresses: [{{.}}]
  conditions: {ready: true}
{{- end}}
`))

func (s svcSpec) yaml(t testing.TB) string {
	t.Helper()
	var b bytes.Buffer
	if err := svcTemplate.Execute(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func (s svcSpec) addr() string { return fmt.Sprintf("%s:%d", s.ClusterIP, s.Port) }

// proxy is a running kproxy process.
type proxy struct {
	cmd     *exec.Cmd
	metrics string
	healthz string
	admin   string
	logs    *syncbuf.Buffer
	exited  chan struct{}
}

// startProxy runs kproxy in userspace mode on the manifests, with its servers on
// n's addresses, and waits until /healthz answers.
func startProxy(t testing.TB, n net127, dir string, extra ...string) *proxy {
	t.Helper()
	p := &proxy{
		metrics: fmt.Sprintf("%s:%d", n.ip(2), port()),
		healthz: fmt.Sprintf("%s:%d", n.ip(2), port()),
		admin:   fmt.Sprintf("%s:%d", n.ip(2), port()),
		logs:    &syncbuf.Buffer{},
	}
	args := append([]string{"--proxy-mode", "userspace", "--services-from", dir,
		"--hostname-override", "e2e-node", "--iptables-min-sync-period", "100ms",
		"--metrics-bind-address", p.metrics, "--healthz-bind-address", p.healthz,
		"--admin-bind-address", p.admin, "--bind-address-hard-fail"}, extra...)
	p.start(t, repoRoot, args)
	waitFor(t, 10*time.Second, "kproxy /healthz", func() error {
		_, _, err := httpGet("http://" + p.healthz + "/healthz")
		return err
	})
	return p
}

func (p *proxy) start(t testing.TB, dir string, args []string) {
	t.Helper()
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { _ = p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
			t.Error("kproxy did not exit within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("kproxy output:\n%s", p.logs.String())
		}
	})
}

func httpGet(url string) (int, string, error) {
	// A new connection per request, as curl makes: keep-alive would pin one backend.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
