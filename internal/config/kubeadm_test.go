package config

import (
	"reflect"
	"testing"
)

// kubeadmConfig is the config.conf kubeadm writes into the kube-proxy ConfigMap
// (nulls, logging options and all): kproxy must take it unchanged.
const kubeadmConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`

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
	for _, w := range Ignored(c) {
		if w.Field != "conntrack" {
			t.Errorf("kubeadm's config has a setting kproxy ignores: %s", w)
		}
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
