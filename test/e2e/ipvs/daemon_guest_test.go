//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"kproxy.dev/kproxy/internal/dataplane"
	ipvsdp "kproxy.dev/kproxy/internal/dataplane/ipvs"
	"kproxy.dev/kproxy/internal/testing/netns"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

// kproxyBinary is where TestIPVSInVM puts the static kproxy binary in the guest.
const kproxyBinary = "/usr/local/bin/kproxy"

// manifest is one Service (NodePort) with its EndpointSlice, as --services-from reads.
type manifest struct {
	name, clusterIP string
	port, nodePort  int
	scheduler       string
	// endpoints are "ip" (ready) or "ip:terminating"; weights "ip=w,..." or "".
	endpoints []string
	weights   string
	target    int
}

func (m manifest) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: e2e
`, m.name)
	if m.scheduler != "" {
		fmt.Fprintf(&b, "  annotations:\n    kproxy.dev/scheduler: %s\n", m.scheduler)
	}
	fmt.Fprintf(&b, `spec:
  type: NodePort
  clusterIP: %s
  clusterIPs: [%s]
  ports:
  - name: p
    protocol: TCP
    port: %d
    targetPort: %d
    nodePort: %d
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-1
  namespace: e2e
  labels:
    kubernetes.io/service-name: %s
`, m.clusterIP, m.clusterIP, m.port, m.target, m.nodePort, m.name, m.name)
	if m.weights != "" {
		fmt.Fprintf(&b, "  annotations:\n    kproxy.dev/weights: %q\n", m.weights)
	}
	fmt.Fprintf(&b, "addressType: IPv4\nports:\n- name: p\n  protocol: TCP\n  port: %d\nendpoints:\n", m.target)
	for _, e := range m.endpoints {
		ip, term := strings.CutSuffix(e, ":terminating")
		cond := "{ready: true, serving: true, terminating: false}"
		if term {
			cond = "{ready: false, serving: true, terminating: true}"
		}
		fmt.Fprintf(&b, "- addresses: [%s]\n  conditions: %s\n", ip, cond)
	}
	return b.String()
}

// writeManifest replaces the file atomically, as a careful tool would.
func writeManifest(t *testing.T, dir string, m manifest) {
	t.Helper()
	tmp := filepath.Join(dir, "."+m.name+".tmp")
	if err := os.WriteFile(tmp, []byte(m.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, m.name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// startDaemon runs `kproxy --proxy-mode ipvs --services-from dir` and stops it with
// SIGTERM when the test ends.
func startDaemon(t *testing.T, dir string) *syncbuf.Buffer {
	t.Helper()
	logs, _ := startDaemonMode(t, dir, "ipvs")
	return logs
}

// startDaemonMode is startDaemon in another proxy mode; it also returns the
// daemon's process.
func startDaemonMode(t *testing.T, dir, mode string) (*syncbuf.Buffer, *os.Process) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cmd := exec.Command(kproxyBinary, "--proxy-mode", mode, "--services-from", dir,
		"--hostname-override", "vm-node", "--cluster-cidr", "10.244.0.0/16",
		"--ipvs-min-sync-period", "100ms", "--v", "4",
		"--metrics-bind-address", "127.0.0.1:10249", "--healthz-bind-address", "127.0.0.1:10256")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("kproxy logs:\n%s", logs.String())
		}
	})
	return logs, cmd.Process
}

// waitKernel waits until the kernel's row for address satisfies ok.
func waitKernel(t *testing.T, address string, ok func(dataplane.VirtualService) bool) dataplane.VirtualService {
	t.Helper()
	var last dataplane.VirtualService
	err := netns.Eventually(bg, 60*time.Second, func() error {
		rows, err := ipvsdp.ListKernel(bg)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Address == address {
				last = r
				if ok(r) {
					return nil
				}
			}
		}
		return fmt.Errorf("kernel row for %s not as expected yet: %+v", address, last)
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func TestGuestDaemonServesManifestsInIPVSMode(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	olds := tp.backends("dmn-old", 2, false)
	news := tp.backends("dmn-new", 2, false)
	client := tp.add("dmn-cl", "192.168")
	dir := t.TempDir()
	m := manifest{name: "web", clusterIP: "10.96.5.1", port: 80, nodePort: 30090, target: 8080, scheduler: "wrr",
		endpoints: []string{olds[0].IP.String(), olds[1].IP.String()}, weights: olds[0].IP.String() + "=3"}
	writeManifest(t, dir, m)
	startDaemon(t, dir)

	row := waitKernel(t, "10.96.5.1:80", func(r dataplane.VirtualService) bool { return len(r.RealServers) == 2 })
	if row.Scheduler != "wrr" || row.Service != "" && row.Service != "e2e/web:p" {
		t.Errorf("kernel row %+v, want scheduler wrr", row)
	}
	got := hits(t, client, "10.96.5.1:80", 8)
	if got[olds[0].Name] != 6 || got[olds[1].Name] != 2 {
		t.Errorf("wrr 3:1 through the daemon: %v, want 6 and 2", got)
	}
	nodePort := netip.AddrPortFrom(client.NodeIP, 30090).String()
	if got := hits(t, client, nodePort, 8); len(got) != 2 {
		t.Errorf("NodePort %s reached %v, want both endpoints", nodePort, got)
	}
	out, err := exec.Command(kproxyBinary, "list", "--kernel").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.96.5.1:80 wrr") {
		t.Errorf("kproxy list --kernel: %v\n%s", err, out)
	}

	// Rolling replacement while a client holds a connection.
	conn, err := client.Dial("tcp4", "10.96.5.1:80", timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, err := netns.ReadLine(conn, timeout)
	if err != nil {
		t.Fatal(err)
	}
	m.weights = ""
	steps := [][]string{
		{olds[0].IP.String() + ":terminating", olds[1].IP.String(), news[0].IP.String()},
		{olds[1].IP.String() + ":terminating", news[0].IP.String(), news[1].IP.String()},
		{news[0].IP.String(), news[1].IP.String()},
	}
	for i, eps := range steps {
		m.endpoints = eps
		writeManifest(t, dir, m)
		var ready []string
		for _, e := range eps {
			if !strings.HasSuffix(e, ":terminating") {
				ready = append(ready, e+":8080")
			}
		}
		// positive sorts as strings: so must ready, or two-digit subnets
		// (10.244.10.2 before 10.244.9.2) never match.
		sort.Strings(ready)
		waitKernel(t, "10.96.5.1:80", func(r dataplane.VirtualService) bool {
			return strings.Join(positive(r), " ") == strings.Join(ready, " ")
		})
		if got, err := netns.AskConn(conn, timeout); err != nil || got != first {
			t.Fatalf("rollout step %d broke the long connection: %q %v (want %q)", i, got, err, first)
		}
	}
	got = hits(t, client, "10.96.5.1:80", 4)
	if got[news[0].Name]+got[news[1].Name] != 4 {
		rows, _ := ipvsdp.ListKernel(bg)
		t.Errorf("after the rollout new connections reached %v, want only the new endpoints; kernel: %+v", got, rows)
	}
}

// positive lists the real servers with weight > 0, sorted.
func positive(r dataplane.VirtualService) []string {
	var out []string
	for _, rs := range r.RealServers {
		if rs.Weight > 0 {
			out = append(out, rs.Address)
		}
	}
	sort.Strings(out)
	return out
}

func TestGuestDaemonCleanupFlagLeavesNothing(t *testing.T) {
	requireVM(t)
	tp := &topology{t: t}
	be := tp.add("dcl-be", "10.244")
	dir := t.TempDir()
	writeManifest(t, dir, manifest{name: "gone", clusterIP: "10.96.6.1", port: 80, nodePort: 30091, target: 8080, endpoints: []string{be.IP.String()}})
	func() {
		t.Run("daemon", func(t *testing.T) {
			startDaemon(t, dir)
			waitKernel(t, "10.96.6.1:80", func(r dataplane.VirtualService) bool { return len(r.RealServers) == 1 })
		})
	}()
	out, err := exec.Command(kproxyBinary, "--cleanup", "--proxy-mode", "ipvs").CombinedOutput()
	if err != nil {
		t.Fatalf("kproxy --cleanup: %v\n%s", err, out)
	}
	assertClean(t)
}
