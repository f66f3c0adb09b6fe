//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/testing/netns"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

const (
	nodeName    = "node-a"
	clusterCIDR = "10.244.0.0/16"
	backendPort = 8080
	udpPort     = 5353
	// syncPeriod is short so that periodic repairs happen within a test.
	syncPeriod = "2s"
)

// cluster is one node running kproxy, its backends ("pods") and a client.
type cluster struct {
	t        *testing.T
	m        mode
	env      *netns.Env
	dir      string
	backends []*netns.NS
	client   *netns.NS
	proc     *exec.Cmd
	done     chan struct{}
	logs     *syncbuf.Buffer
}

// newCluster builds the namespaces: n backends each serving TCP and UDP, and one
// off-cluster client. kproxy is not started yet.
func newCluster(t *testing.T, m mode, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, m: m, env: netns.New(t, "iptables-e2e"), dir: t.TempDir()}
	for i := 0; i < n; i++ {
		be := c.env.AddBackend(fmt.Sprintf("be%d", i))
		be.ServeTCP(t, backendPort)
		be.ServeUDP(t, udpPort)
		c.backends = append(c.backends, be)
	}
	c.client = c.env.AddClient("client")
	// A real node has a default route; without one, traffic to a ClusterIP that no
	// rule rewrites would fail routing before netfilter sees it.
	c.env.Node.MustRun(t, "ip", "route", "add", "default", "via", c.client.IP.String())
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("kproxy log:\n%s", c.logs)
			if m.Dump != nil {
				t.Logf("kernel state:\n%s", m.Dump(t, c.env.Node))
			}
		}
	})
	return c
}

// apply writes one manifest file; kproxy watches the directory. The file is
// renamed into place so kproxy never reads half of it.
func (c *cluster) apply(name, manifest string) {
	c.t.Helper()
	tmp := filepath.Join(c.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, name+".yaml")); err != nil {
		c.t.Fatal(err)
	}
}

// start runs kproxy inside the node namespace.
func (c *cluster) start(extra ...string) {
	c.t.Helper()
	args := append([]string{"netns", "exec", c.env.Node.Name, kproxyBinary(c.t),
		"--proxy-mode", c.m.ProxyMode, "--services-from", c.dir,
		"--hostname-override", nodeName, "--cluster-cidr", clusterCIDR,
		"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256",
		"--iptables-sync-period", syncPeriod, "--iptables-min-sync-period", "0s", "--v", "4"}, c.modeArgs()...)
	args = append(args, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), c.m.Env...)
	if c.logs == nil {
		c.logs = &syncbuf.Buffer{}
	}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.proc, c.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(c.done)
}

func (c *cluster) modeArgs() []string {
	if c.m.Args == nil {
		return nil
	}
	return c.m.Args(c.t)
}

// stop sends SIGTERM and waits for kproxy to exit (SIGKILL after 10s).
func (c *cluster) stop() {
	if c.proc == nil {
		return
	}
	c.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.proc.Process.Kill()
		<-c.done
	}
	c.proc = nil
}

// runKproxy runs kproxy to completion inside the node namespace (for --cleanup).
func (c *cluster) runKproxy(args ...string) string {
	c.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", c.env.Node.Name, kproxyBinary(c.t)}, args...)...)
	cmd.Env = append(os.Environ(), c.m.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("kproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// metrics fetches /metrics from inside the node namespace. The transport dials
// from the namespace itself: http.Client dials on goroutines of its own.
func (c *cluster) metrics() (string, error) {
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return c.env.Node.Dial(network, addr, 2*time.Second)
		}}
	cl := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	resp, err := cl.Get("http://127.0.0.1:10249/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}

// expectHealth GETs url from the client namespace and checks status and body.
func (c *cluster) expectHealth(url string, code int, bodyPart string) error {
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return c.client.Dial(network, addr, 2*time.Second)
		}}
	resp, err := (&http.Client{Timeout: 2 * time.Second, Transport: tr}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != code || !strings.Contains(b.String(), bodyPart) {
		return fmt.Errorf("got %d %s, want %d with %s", resp.StatusCode, b.String(), code, bodyPart)
	}
	return nil
}

// eventually retries f for up to 15s and fails the test with f's last error.
func (c *cluster) eventually(what string, f func() error) {
	c.t.Helper()
	if err := netns.Eventually(context.Background(), 15*time.Second, f); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// names returns the backend names.
func (c *cluster) names(bs ...*netns.NS) map[string]bool {
	out := map[string]bool{}
	for _, b := range bs {
		out[b.Name] = true
	}
	return out
}

// askUntilAll asks addr until every wanted backend answered, or fails.
func (c *cluster) askUntilAll(from *netns.NS, addr string, want map[string]bool) {
	c.t.Helper()
	c.askWithUntilAll(addr, want, func() (string, error) { return from.AskTCP(addr, time.Second) })
}

// askWithUntilAll calls ask (a client asking addr which backend it is) until every
// wanted backend answered, or fails.
func (c *cluster) askWithUntilAll(addr string, want map[string]bool, ask func() (string, error)) {
	c.t.Helper()
	seen := map[string]bool{}
	c.eventually("answers from every endpoint of "+addr, func() error {
		for i := 0; i < 20; i++ {
			got, err := ask()
			if err != nil {
				return err
			}
			if !want[got] {
				return fmt.Errorf("unexpected answer %q", got)
			}
			seen[got] = true
		}
		if len(seen) < len(want) {
			return fmt.Errorf("only %v answered, want %v", seen, want)
		}
		return nil
	})
}
