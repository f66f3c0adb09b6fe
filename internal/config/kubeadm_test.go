package config

import (
	"os"
	"reflect"
	"testing"
)

// kubeadmConfig is the config.conf kubeadm writes into the kube-proxy ConfigMap
// (nulls, logging options and all): kproxy must take it unchanged. It lives in
// testdata so that the cli tests start the command line with the same bytes.
var kubeadmConfig = mustRead("testdata/kubeadm-config.conf")

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestKubeadmConfigIsAcceptedUnchanged(t *testing.T) {
	c, notes, err := Decode([]byte(kubeadmConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes.Warnings) != 0 {
		t.Errorf("kubeadm's own config warns: %v", notes.Warnings)
	}
	want := []string{"iptables.syncPeriod=30s", "ipvs.syncPeriod=30s", "nftables.syncPeriod=30s", "configSyncPeriod=15m0s"}
	if !reflect.DeepEqual(notes.Defaulted, want) {
		t.Errorf("defaulted = %v, want %v", notes.Defaulted, want)
	}
	if ws := Ignored(c); len(ws) != 0 {
		t.Errorf("kubeadm's config has settings kproxy ignores: %v", ws)
	}
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	if Mode(c) != ModeIPTables || c.IPTables.SyncPeriod.Duration != DefaultSyncPeriod ||
		c.MetricsBindAddress != DefaultMetricsBindAddress || *c.Conntrack.MaxPerCore != DefaultConntrackPerCore {
		t.Errorf("kubeadm's zero values did not take the defaults: %+v", c)
	}
	if c.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig.conf" {
		t.Errorf("clientConnection.kubeconfig = %q", c.ClientConnection.Kubeconfig)
	}
}
