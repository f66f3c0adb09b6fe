package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDecodeAppliesKubeProxyDefaults(t *testing.T) {
	c, err := Decode([]byte("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"))
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
	c, err := Decode([]byte(`
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
		"unknown top-level": {"kind: KubeProxyConfiguration\nbogus: 1\n", `unknown field "bogus"`},
		"unknown nested":    {"iptables:\n  syncPeriodd: 1s\n", `unknown field "iptables.syncPeriodd"`},
		"bad duration":      {"iptables:\n  syncPeriod: soon\n", "soon"},
		"wrong kind":        {"kind: Pod\n", "kind: unsupported"},
		"wrong apiVersion":  {"apiVersion: v1\n", "apiVersion: unsupported"},
		"duplicate key":     {"mode: ipvs\nmode: iptables\n", "mode"},
	}
	for name, tc := range cases {
		_, err := Decode([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
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
		c, err := Decode([]byte(tc.yaml))
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
	c, _ := Decode([]byte("mode: foo\niptables:\n  syncPeriod: -1s\n"))
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

func TestFlagsOverrideTheFileOnlyWhenGiven(t *testing.T) {
	p := writeFile(t, "mode: ipvs\nmetricsBindAddress: 127.0.0.1:9000\niptables:\n  syncPeriod: 7s\nclusterCIDR: 10.0.0.0/8\n")
	f, _ := parse(t, "--config", p, "--proxy-mode", "userspace", "--iptables-min-sync-period", "100ms",
		"--hostname-override", "node-a", "--nodeport-addresses", "127.0.0.0/8,primary")
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if Mode(c) != "userspace" {
		t.Errorf("--proxy-mode did not override: %q", c.Mode)
	}
	if c.MetricsBindAddress != "127.0.0.1:9000" {
		t.Errorf("an unset flag overrode the file: metricsBindAddress = %q", c.MetricsBindAddress)
	}
	if c.IPTables.SyncPeriod.Duration != 7*time.Second || c.IPTables.MinSyncPeriod.Duration != 100*time.Millisecond {
		t.Errorf("iptables periods = %v/%v", c.IPTables.SyncPeriod, c.IPTables.MinSyncPeriod)
	}
	if c.HostnameOverride != "node-a" || c.ClusterCIDR != "10.0.0.0/8" || len(c.NodePortAddresses) != 2 {
		t.Errorf("overrides wrong: %q %q %v", c.HostnameOverride, c.ClusterCIDR, c.NodePortAddresses)
	}
}

func TestFlagsWithoutFileUseDefaults(t *testing.T) {
	f, _ := parse(t, "--metrics-bind-address", "127.0.0.1:1234", "--masquerade-all")
	c, err := f.Config()
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
	if _, err := f.Config(); err == nil || !strings.Contains(err.Error(), `mode: unknown proxy mode "foo"`) {
		t.Errorf("err = %v", err)
	}
	f, _ = parse(t, "--iptables-sync-period", "0s")
	if _, err := f.Config(); err == nil || !strings.Contains(err.Error(), "iptables.syncPeriod: must be greater than 0") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("err = %v", err)
	}
	p := writeFile(t, "iptables:\n  bogus: 1\n")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "iptables.bogus") {
		t.Errorf("err = %v", err)
	}
}

// ownFlags are kproxy's flags that are not KubeProxyConfiguration fields.
var ownFlags = map[string]bool{"config": true, "write-config-to": true, "kubeconfig": true, "services-from": true,
	"admin-bind-address": true, "cleanup": true, "demo-backends": true, "v": true,
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
			"string": "x", "stringSlice": "1.2.3.0/24"}[fl.Value.Type()]
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
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "out.yaml")
	if err := Write(c, p); err != nil {
		t.Fatal(err)
	}
	back, err := Load(p)
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
