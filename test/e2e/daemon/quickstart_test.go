package daemon

import (
	"fmt"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeQuickstart returns the README's first command (the quickstart's kproxy
// arguments) and the curl URLs whose comment promises a backend's answer.
func readmeQuickstart(t *testing.T) (args []string, curls map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var cmds []string
	inBlock := false
	for _, l := range lines {
		if strings.HasPrefix(l, "```") {
			if inBlock && len(cmds) > 0 {
				break // the first code block holds the set-up commands
			}
			inBlock = !inBlock
			continue
		}
		if inBlock && strings.TrimSpace(l) != "" {
			cmds = append(cmds, strings.TrimSpace(l))
		}
	}
	if len(cmds) != 2 || cmds[1] != "make test" {
		t.Fatalf("the README must start with exactly two commands, the second `make test`; got %q", cmds)
	}
	const prefix = "go run ./cmd/kproxy "
	if !strings.HasPrefix(cmds[0], prefix) {
		t.Fatalf("the README's first command %q does not start with %q", cmds[0], prefix)
	}
	args = strings.Fields(strings.TrimPrefix(cmds[0], prefix))
	curls = map[string][]string{}
	re := regexp.MustCompile(`^curl (http://\S+)\s+# hello from backend (\S+)`)
	for _, l := range lines {
		if m := re.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			curls[m[1]] = append(curls[m[1]], m[2])
		}
	}
	if len(curls) == 0 {
		t.Fatal("the README shows no curl line answered by a backend")
	}
	return args, curls
}

// TestQuickstartAsTheREADMERunsIt runs the README's first command (with the built
// binary for `go run ./cmd/kproxy`) and checks that its curl lines are answered by
// every backend they name. Only the monitoring ports are moved, so that a kube-proxy
// or another test on this machine does not collide with them.
func TestQuickstartAsTheREADMERunsIt(t *testing.T) {
	args, curls := readmeQuickstart(t)
	n := newNet127()
	p := &proxy{
		metrics: fmt.Sprintf("%s:%d", n.ip(2), port()),
		healthz: fmt.Sprintf("%s:%d", n.ip(2), port()),
		admin:   fmt.Sprintf("%s:%d", n.ip(2), port()),
		logs:    &syncbuf.Buffer{},
	}
	// With --config the file wins over the address flags (kube-proxy's precedence),
	// so the ports move in a copy of the quickstart's config file.
	args = moveMonitoringPorts(t, args, p.metrics, p.healthz)
	args = append(args, "--admin-bind-address", p.admin)
	p.start(t, repoRoot, args)
	for url, want := range curls {
		seen := map[string]bool{}
		waitFor(t, 10*time.Second, "the quickstart's "+url, func() error {
			code, body, err := httpGet(url)
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("status %d", code)
			}
			seen[strings.TrimSpace(strings.TrimPrefix(body, "hello from backend "))] = true
			for _, b := range want {
				if !seen[b] {
					return fmt.Errorf("answered by %v, not yet by %s", seen, b)
				}
			}
			return nil
		})
		if len(want) < 2 {
			t.Errorf("the README's curl lines name %d backends for %s, want at least 2", len(want), url)
		}
	}
	code, body, err := httpGet("http://" + p.metrics + "/proxyMode")
	if err != nil || code != 200 || body != "userspace" {
		t.Errorf("quickstart /proxyMode = %d %q %v", code, body, err)
	}
}

// moveMonitoringPorts replaces the --config file in args by a copy whose
// metricsBindAddress and healthzBindAddress are metrics and healthz.
func moveMonitoringPorts(t *testing.T, args []string, metrics, healthz string) []string {
	t.Helper()
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] != "--config" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, out[i+1]))
		if err != nil {
			t.Fatal(err)
		}
		conf := regexp.MustCompile(`(?m)^metricsBindAddress:.*$`).ReplaceAllString(string(b), "metricsBindAddress: "+metrics)
		conf = regexp.MustCompile(`(?m)^healthzBindAddress:.*$`).ReplaceAllString(conf, "healthzBindAddress: "+healthz)
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out[i+1] = path
		return out
	}
	return append(out, "--metrics-bind-address", metrics, "--healthz-bind-address", healthz)
}
