package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

const header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

// decodeBody decodes body under a valid apiVersion and kind.
func decodeBody(body string) (*kpconfig.KubeProxyConfiguration, Notes, error) {
	return Decode([]byte(header + body))
}

func TestDecodeAppliesKubeProxyDefaults(t *testing.T) {
	c, _, err := Decode([]byte(header))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"iptables.syncPeriod":    {c.IPTables.SyncPeriod.Duration, 30 * time.Second},
		"iptables.minSyncPeriod": {c.IPTables.MinSyncPeriod.Duration, time.Second},
		"iptables.masqueradeBit": {*c.IPTables.MasqueradeBit, int32(14)},
		"nftables.syncPeriod":    {c.NFTables.SyncPeriod.Duration, 30 * time.Second},
		"nftables.minSyncPeriod": {c.NFTables.MinSyncPeriod.Duration, time.Second},
		"nftables.masqueradeBit": {*c.NFTables.MasqueradeBit, int32(14)},
		"ipvs.syncPeriod":        {c.IPVS.SyncPeriod.Duration, 30 * time.Second},
		"healthzBindAddress":     {c.HealthzBindAddress, "0.0.0.0:10256"},
		"metricsBindAddress":     {c.MetricsBindAddress, "127.0.0.1:10249"},
		"conntrack.maxPerCore":   {*c.Conntrack.MaxPerCore, int32(32768)},
		"conntrack.min":          {*c.Conntrack.Min, int32(131072)},
		"conntrack.tcpEst":       {c.Conntrack.TCPEstablishedTimeout.Duration, 24 * time.Hour},
		"conntrack.tcpCloseWait": {c.Conntrack.TCPCloseWaitTimeout.Duration, time.Hour},
		"configSyncPeriod":       {c.ConfigSyncPeriod.Duration, 15 * time.Minute},
		"oomScoreAdj":            {*c.OOMScoreAdj, int32(-999)},
	}
	for name, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %v, want %v", name, v[0], v[1])
		}
	}
	if Mode(c) != "iptables" {
		t.Errorf("empty mode = %q, want iptables", Mode(c))
	}
	if err := Validate(c); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestDecodeKeepsFileValues(t *testing.T) {
	c, _, err := Decode([]byte(`
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: userspace
iptables:
  syncPeriod: 10s
  minSyncPeriod: 250ms
metricsBindAddress: 127.0.0.1:9999
nodePortAddresses: [127.0.0.0/8, primary]
`))
	if err != nil {
		t.Fatal(err)
	}
	if Mode(c) != "userspace" || c.IPTables.SyncPeriod.Duration != 10*time.Second ||
		c.IPTables.MinSyncPeriod.Duration != 250*time.Millisecond || c.MetricsBindAddress != "127.0.0.1:9999" {
		t.Errorf("file values lost: %+v", c)
	}
	sync, min := SyncPeriods(c)
	if sync != 10*time.Second || min != 250*time.Millisecond {
		t.Errorf("SyncPeriods(userspace) = %v, %v", sync, min)
	}
	if err := Validate(c); err != nil {
		t.Error(err)
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"empty file":       {"", "apiVersion: the config file is empty"},
		"blank file":       {"  \n\n", "apiVersion: the config file is empty"},
		"empty object":     {"{}", `apiVersion: required: want "kubeproxy.config.k8s.io/v1alpha1"`},
		"no apiVersion":    {"kind: KubeProxyConfiguration\nmode: ipvs\n", "apiVersion: required"},
		"no kind":          {"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n", `kind: required: want "KubeProxyConfiguration"`},
		"wrong kind":       {"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: Pod\n", "kind: unsupported Pod"},
		"wrong apiVersion": {"apiVersion: v1\nkind: KubeProxyConfiguration\n", "apiVersion: unsupported v1"},
		"bad duration":     {header + "iptables:\n  syncPeriod: soon\n", "soon"},
		"wrong type":       {header + "mode: [a, b]\n", "decoding KubeProxyConfiguration"},
		"syntax":           {header + "iptables: [\n", "decoding KubeProxyConfiguration"},
		"not an object":    {"- a\n- b\n", "must be a YAML or JSON object"},
	}
	for name, tc := range cases {
		_, _, err := Decode([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
}

// kube-proxy decodes leniently when strict decoding fails, and goes on: so does
// kproxy, naming each field it ignores.
func TestUnknownRemovedAndDuplicateFieldsWarn(t *testing.T) {
	c, notes, err := decodeBody("bogus: 1\niptables:\n  syncPeriodd: 1s\n  syncPeriod: 9s\n" +
		"resourceContainer: /kube-proxy\nmode: ipvs\nmode: nftables\n")
	if err != nil {
		t.Fatalf("unknown fields must not be fatal: %v", err)
	}
	if c.IPTables.SyncPeriod.Duration != 9*time.Second || Mode(c) != "nftables" {
		t.Errorf("known fields lost: syncPeriod %v mode %q", c.IPTables.SyncPeriod, c.Mode)
	}
	got := map[string]string{}
	for _, w := range notes.Warnings {
		got[w.Field] = w.Msg
	}
	for field, msg := range map[string]string{"bogus": "unknown field", "iptables.syncPeriodd": "unknown field",
		"resourceContainer": "removed in kube-proxy", "mode": "given more than once"} {
		if !strings.Contains(got[field], msg) {
			t.Errorf("warning for %s = %q, want it to contain %q (all: %v)", field, got[field], msg, notes.Warnings)
		}
	}
	if len(notes.Warnings) != 4 {
		t.Errorf("want 4 warnings, got %v", notes.Warnings)
	}
}

// kube-proxy replaces a sync period of 0 by its default; kproxy does too, and
// says so.
func TestZeroSyncPeriodsAreReported(t *testing.T) {
	c, notes, err := decodeBody("mode: nftables\nnftables:\n  syncPeriod: 0s\nconfigSyncPeriod: 0s\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.NFTables.SyncPeriod.Duration != DefaultSyncPeriod {
		t.Errorf("nftables.syncPeriod = %v", c.NFTables.SyncPeriod)
	}
	want := []string{"nftables.syncPeriod=30s", "configSyncPeriod=15m0s"}
	if !reflect.DeepEqual(notes.Defaulted, want) {
		t.Errorf("defaulted = %v, want %v", notes.Defaulted, want)
	}
}

func TestValidateNamesFields(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want string
	}{
		"mode":          {"mode: foo\n", `mode: unknown proxy mode "foo"`},
		"sync period":   {"iptables:\n  syncPeriod: -1s\n", "iptables.syncPeriod: must be greater than 0"},
		"min sync":      {"iptables:\n  minSyncPeriod: -1s\n", "iptables.minSyncPeriod: must be greater than or equal to 0"},
		"min > sync":    {"nftables:\n  syncPeriod: 1s\n  minSyncPeriod: 2s\n", "nftables.minSyncPeriod: must be less than or equal to nftables.syncPeriod"},
		"masq bit":      {"iptables:\n  masqueradeBit: 32\n", "iptables.masqueradeBit: must be within the range [0, 31]"},
		"ipvs sync":     {"mode: ipvs\nipvs:\n  syncPeriod: -5s\n", "ipvs.syncPeriod: must be greater than 0"},
		"ipvs exclude":  {"mode: ipvs\nipvs:\n  excludeCIDRs: [nope]\n", "ipvs.excludeCIDRs[0]"},
		"healthz addr":  {"healthzBindAddress: localhost\n", "healthzBindAddress:"},
		"metrics addr":  {"metricsBindAddress: 300.1.1.1:1\n", "metricsBindAddress:"},
		"cluster cidr":  {"clusterCIDR: 10.0.0.0/33\n", "clusterCIDR:"},
		"nodeport addr": {"nodePortAddresses: [10.0.0.0/8, somewhere]\n", "nodePortAddresses[1]"},
		"conntrack":     {"conntrack:\n  maxPerCore: -1\n", "conntrack.maxPerCore: must be greater than or equal to 0"},
		"oom":           {"oomScoreAdj: 5000\n", "oomScoreAdj: must be within the range [-1000, 1000]"},
	}
	for name, tc := range cases {
		c, _, err := decodeBody(tc.yaml)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		err = Validate(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c, _, _ := decodeBody("mode: foo\niptables:\n  syncPeriod: -1s\n")
	l, ok := AsErrorList(Validate(c))
	if !ok || len(l) != 2 {
		t.Fatalf("want 2 field errors, got %v", l)
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func parse(t *testing.T, args ...string) (*Flags, error) {
	t.Helper()
	f := &Flags{}
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	f.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f, nil
}

// kube-proxy's precedence: with --config the file replaces every config flag,
// except the logging flags and --hostname-override; the ignored flags are named.
func TestWithConfigTheFileWins(t *testing.T) {
	p := writeFile(t, header+"mode: ipvs\nmetricsBindAddress: 127.0.0.1:9000\niptables:\n  syncPeriod: 7s\n"+
		"clusterCIDR: 10.0.0.0/8\nlogging:\n  verbosity: 1\n  format: json\n")
	f, _ := parse(t, "--config", p, "--proxy-mode", "userspace", "--iptables-min-sync-period", "100ms",
		"--hostname-override", " Node-A ", "--metrics-bind-address", "127.0.0.1:1", "-v", "3", "--kubeconfig", "/x")
	c, notes, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if Mode(c) != "ipvs" || c.MetricsBindAddress != "127.0.0.1:9000" || c.IPTables.MinSyncPeriod.Duration != time.Second {
		t.Errorf("a flag overrode the file: mode %q metrics %q minSync %v", c.Mode, c.MetricsBindAddress, c.IPTables.MinSyncPeriod)
	}
	if c.HostnameOverride != "node-a" {
		t.Errorf("--hostname-override must apply with --config: %q", c.HostnameOverride)
	}
	if c.Logging.Verbosity != 3 || c.Logging.Format != "json" {
		t.Errorf("logging: -v must override the file, the file's format stays: %+v", c.Logging)
	}
	if c.ClientConnection.Kubeconfig != "" {
		t.Errorf("--kubeconfig overrode the file: %q", c.ClientConnection.Kubeconfig)
	}
	if len(notes.Warnings) != 1 || notes.Warnings[0].Field != "flags" {
		t.Fatalf("want one warning naming the ignored flags, got %v", notes.Warnings)
	}
	for _, name := range []string{"--proxy-mode", "--iptables-min-sync-period", "--metrics-bind-address", "--kubeconfig"} {
		if !strings.Contains(notes.Warnings[0].Msg, name) {
			t.Errorf("warning %q does not name %s", notes.Warnings[0].Msg, name)
		}
	}
	if strings.Contains(notes.Warnings[0].Msg, "--v,") || strings.Contains(notes.Warnings[0].Msg, "--hostname-override,") {
		t.Errorf("warning names a flag that applied: %q", notes.Warnings[0].Msg)
	}
}

func TestWithoutConfigTheFlagsApply(t *testing.T) {
	f, _ := parse(t, "--proxy-mode", "nftables", "--iptables-sync-period", "5s", "--iptables-min-sync-period", "100ms",
		"--hostname-override", "node-a", "--nodeport-addresses", "127.0.0.0/8,primary", "--kubeconfig", "/k",
		"--feature-gates", "KubeProxyIPVS=false,NFTablesNetlink=true", "--detect-local-mode", "ClusterCIDR",
		"--logging-format", "json", "-v", "2")
	c, notes, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if len(notes.Warnings) != 0 {
		t.Errorf("warnings: %v", notes.Warnings)
	}
	// --iptables-*sync-period set every mode's periods but ipvs's, as in kube-proxy.
	if sync, min := SyncPeriods(c); sync != 5*time.Second || min != 100*time.Millisecond {
		t.Errorf("nftables periods = %v/%v", sync, min)
	}
	if c.HostnameOverride != "node-a" || len(c.NodePortAddresses) != 2 || c.ClientConnection.Kubeconfig != "/k" {
		t.Errorf("overrides wrong: %q %v %q", c.HostnameOverride, c.NodePortAddresses, c.ClientConnection.Kubeconfig)
	}
	if FeatureEnabled(c, GateKubeProxyIPVS) || !FeatureEnabled(c, GateNFTablesNetlink) || !FeatureEnabled(c, GateComponentFlagz) {
		t.Errorf("feature gates = %v", c.FeatureGates)
	}
	if c.Logging.Format != "json" || c.Logging.Verbosity != 2 {
		t.Errorf("logging = %+v", c.Logging)
	}
}

func TestDeprecatedPortFlags(t *testing.T) {
	f, _ := parse(t, "--metrics-port", "0", "--healthz-bind-address", "127.0.0.1", "--healthz-port", "9999")
	c, _, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsBindAddress != "" || c.HealthzBindAddress != "127.0.0.1:9999" {
		t.Errorf("metrics %q healthz %q", c.MetricsBindAddress, c.HealthzBindAddress)
	}
	f, _ = parse(t, "--healthz-port", "9999")
	if c, _, _ := f.Config(); c.HealthzBindAddress != DefaultHealthzBindAddress {
		t.Errorf("a port flag replaced the address's own port: %q", c.HealthzBindAddress)
	}
}

func TestOwnFlagsParse(t *testing.T) {
	f, _ := parse(t, "--init-only", "--master", "https://10.0.0.1:6443", "--cleanup", "--write-config-to", "/tmp/x")
	if !f.InitOnly || f.Master != "https://10.0.0.1:6443" || !f.Cleanup || f.WriteConfigTo != "/tmp/x" {
		t.Errorf("flags = %+v", f)
	}
	if _, _, err := f.Config(); err != nil {
		t.Error(err)
	}
	f, _ = parse(t, "--hostname-override", "  ")
	if _, _, err := f.Config(); err == nil || !strings.Contains(err.Error(), "hostnameOverride") {
		t.Errorf("blank --hostname-override: err = %v", err)
	}
}

func TestFlagsWithoutFileUseDefaults(t *testing.T) {
	f, _ := parse(t, "--metrics-bind-address", "127.0.0.1:1234", "--masquerade-all")
	c, _, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsBindAddress != "127.0.0.1:1234" || c.HealthzBindAddress != DefaultHealthzBindAddress {
		t.Errorf("addresses = %q, %q", c.MetricsBindAddress, c.HealthzBindAddress)
	}
	if !c.IPTables.MasqueradeAll || !c.NFTables.MasqueradeAll {
		t.Error("--masquerade-all not applied")
	}
	if f.AdminBindAddress != DefaultAdminBindAddress {
		t.Errorf("admin address default = %q", f.AdminBindAddress)
	}
}

func TestFlagValuesAreValidated(t *testing.T) {
	f, _ := parse(t, "--proxy-mode", "foo")
	if _, _, err := f.Config(); err == nil || !strings.Contains(err.Error(), `mode: unknown proxy mode "foo"`) {
		t.Errorf("err = %v", err)
	}
	f, _ = parse(t, "--iptables-sync-period", "0s")
	if _, _, err := f.Config(); err == nil || !strings.Contains(err.Error(), "iptables.syncPeriod: must be greater than 0") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("err = %v", err)
	}
	p := writeFile(t, "iptables:\n  bogus: 1\n")
	if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "apiVersion: required") {
		t.Errorf("err = %v", err)
	}
}

// ownFlags are kproxy's flags that are not KubeProxyConfiguration fields.
var ownFlags = map[string]bool{"config": true, "write-config-to": true, "services-from": true,
	"admin-bind-address": true, "cleanup": true, "demo-backends": true, "init-only": true, "master": true,
	"hostname-override": true, "healthz-port": true, "metrics-port": true,
	"userspace-max-conns": true, "userspace-max-conns-per-client": true, "userspace-idle-timeout": true}

func TestUserspaceRelayFlags(t *testing.T) {
	f := &Flags{}
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	f.AddFlags(fs)
	if f.UserspaceMaxConns != 0 || f.UserspaceMaxConnsPerClient != 0 || f.UserspaceIdleTimeout != 0 {
		t.Fatalf("defaults %d %d %v, want 0 (the mode's defaults)", f.UserspaceMaxConns, f.UserspaceMaxConnsPerClient, f.UserspaceIdleTimeout)
	}
	err := fs.Parse([]string{"--userspace-max-conns=100", "--userspace-max-conns-per-client=-1", "--userspace-idle-timeout=90s"})
	if err != nil {
		t.Fatal(err)
	}
	if f.UserspaceMaxConns != 100 || f.UserspaceMaxConnsPerClient != -1 || f.UserspaceIdleTimeout != 90*time.Second {
		t.Fatalf("parsed %d %d %v", f.UserspaceMaxConns, f.UserspaceMaxConnsPerClient, f.UserspaceIdleTimeout)
	}
}

// TestEveryConfigFlagOverridesItsField guards the override table: a flag bound to
// the config but missing from the table would be silently ignored.
func TestEveryConfigFlagOverridesItsField(t *testing.T) {
	f := &Flags{}
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	f.AddFlags(fs)
	fs.VisitAll(func(fl *pflag.Flag) {
		if ownFlags[fl.Name] {
			return
		}
		if overrides[fl.Name] == nil {
			t.Errorf("flag --%s has no override: it would be ignored", fl.Name)
			return
		}
		value := map[string]string{"duration": "7s", "int32": "7", "float32": "7", "bool": "true",
			"string": "x", "stringSlice": "1.2.3.0/24", "uint32": "3", "mapStringBool": "Foo=true",
			"quantity": "1Mi", "pattern=N,...": "x=2"}[fl.Value.Type()]
		if fl.Value.Type() == "bool" && fl.DefValue == "true" {
			value = "false"
		}
		g := &Flags{}
		gfs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
		g.AddFlags(gfs)
		if err := gfs.Set(fl.Name, value); err != nil {
			t.Errorf("--%s=%s: %v", fl.Name, value, err)
			return
		}
		c := Default()
		g.applyFlags(c)
		if reflect.DeepEqual(c, Default()) {
			t.Errorf("--%s=%s changed nothing in the config", fl.Name, value)
		}
	})
	for name := range overrides {
		if fs.Lookup(name) == nil {
			t.Errorf("override for unknown flag --%s", name)
		}
	}
}

func TestWriteConfigRoundTrips(t *testing.T) {
	f, _ := parse(t, "--proxy-mode", "nftables", "--cluster-cidr", "10.0.0.0/8")
	c, _, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "out.yaml")
	if err := Write(c, p); err != nil {
		t.Fatal(err)
	}
	back, _, err := Load(p)
	if err != nil {
		t.Fatalf("kproxy cannot read the config it wrote: %v", err)
	}
	if Mode(back) != "nftables" || back.ClusterCIDR != "10.0.0.0/8" {
		t.Errorf("flags lost: mode %q clusterCIDR %q", back.Mode, back.ClusterCIDR)
	}
	p2 := filepath.Join(t.TempDir(), "again.yaml")
	if err := Write(back, p2); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p)
	second, _ := os.ReadFile(p2)
	if string(first) != string(second) {
		t.Errorf("write, load, write is not stable:\n%s\n---\n%s", first, second)
	}
}
