package cli

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	proxyd "kproxy.dev/kproxy/internal/daemon"
	_ "kproxy.dev/kproxy/internal/dataplane/iptables" // kubeadm's mode, as cmd/kproxy links it
)

// run runs `kproxy args...` and returns its stdout, its log and its error.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, log bytes.Buffer
	logOut, logErrOut = &log, &log
	// --init-only would tune the host's conntrack sysctls: record the call instead.
	initOnly = func(c *kpconfig.KubeProxyConfiguration, l *slog.Logger) error {
		l.Info("--init-only: initialization done, exiting", "mode", config.Mode(c))
		return nil
	}
	t.Cleanup(func() { logOut, logErrOut, initOnly = nil, nil, proxyd.InitOnly; klog.ClearLogger() })
	cmd := NewRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), log.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionFlag(t *testing.T) {
	out, _, err := run(t, "--version")
	if err != nil || out != "kproxy "+Version+"\n" {
		t.Errorf("--version = %q, %v", out, err)
	}
}

// Warnings about the config are logged once at start, naming the field, in
// klog's format; the flags --config overrides are named too.
func TestConfigWarningsAreLogged(t *testing.T) {
	p := writeConfig(t, "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"+
		"mode: nftables\nnewerField: 1\ndetectLocalMode: NodeCIDR\niptables:\n  syncPeriod: 0s\n")
	out := filepath.Join(t.TempDir(), "out.yaml")
	_, log, err := run(t, "--config", p, "--proxy-mode", "ipvs", "--write-config-to", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`] "config: unknown field; ignored" field="newerField"`,
		`] "config: setting not honoured" field="detectLocalMode" reason="NodeCIDR is not implemented`,
		`field="flags"`, "--proxy-mode ignored",
		`] "config: sync periods given as 0 take kube-proxy's defaults" fields="iptables.syncPeriod=30s"`,
		`] "Wrote configuration" file=`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(log, "newerField") != 1 {
		t.Errorf("the warning is not logged once:\n%s", log)
	}
	c, _, err := config.Load(out)
	if err != nil || config.Mode(c) != "nftables" {
		t.Errorf("written config: mode %v, %v", c, err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	p := writeConfig(t, "mode: ipvs\n")
	_, _, err := run(t, "--config", p)
	if err == nil || !strings.Contains(err.Error(), "apiVersion: required") || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v", err)
	}
	p = writeConfig(t, "")
	if _, _, err := run(t, "--config", p); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: err = %v", err)
	}
}

func TestJSONLoggingFormat(t *testing.T) {
	_, log, err := run(t, "--logging-format", "json", "--init-only", "--proxy-mode", "nftables")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("not JSON: %q", lines[len(lines)-1])
	}
	if !strings.Contains(last["msg"].(string), "--init-only") || last["v"] != float64(0) || last["mode"] != "nftables" {
		t.Errorf("line = %v", last)
	}
}

func TestNewFlagsAreAccepted(t *testing.T) {
	_, log, err := run(t, "--init-only", "--master", "https://10.0.0.1:6443", "--feature-gates", "Foo=true",
		"--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "veth",
		"--pod-bridge-interface", "cni0", "--show-hidden-metrics-for-version", "1.36", "--vmodule", "sync=4",
		"--log-flush-frequency", "5s", "--log-text-split-stream", "--log-text-info-buffer-size", "0",
		"--log-json-split-stream", "--log-json-info-buffer-size", "0", "-v", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"featureGates.Foo", "detectLocalMode", "detectLocal.bridgeInterface",
		"showHiddenMetricsForVersion", "logging.vmodule"} {
		if !strings.Contains(log, `field="`+field+`"`) {
			t.Errorf("no warning for %s:\n%s", field, log)
		}
	}
	if _, _, err := run(t, "--init-only", "--logging-format", "xml"); err == nil || !strings.Contains(err.Error(), "logging.format") {
		t.Errorf("--logging-format xml: %v", err)
	}
}

// kubeadm's own kube-proxy ConfigMap content loads through the command line
// without a warning.
func TestKubeadmConfigStarts(t *testing.T) {
	data, err := os.ReadFile("../config/testdata/kubeadm-config.conf")
	if err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, string(data))
	_, log, err := run(t, "--config", p, "--init-only")
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(log, "W") || strings.Contains(log, "\nW") {
		t.Errorf("warnings:\n%s", log)
	}
	// Without --init-only it goes on to the kubeconfig kubeadm's DaemonSet mounts;
	// missing, the error names the field and the path.
	if runtime.GOOS != "linux" {
		return // the iptables mode exists on Linux only
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, _, err = run(t, "--config", p)
	if err == nil || !strings.Contains(err.Error(), "clientConnection.kubeconfig (--kubeconfig): /var/lib/kube-proxy/kubeconfig.conf: no such file or directory") {
		t.Errorf("err = %v", err)
	}
}
