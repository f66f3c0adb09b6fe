package config

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// kube-proxy's defaults (pkg/proxy/apis/config/v1alpha1/defaults.go). A zero field
// takes the default, as upstream does.
const (
	DefaultHealthzBindAddress = "0.0.0.0:10256"
	DefaultMetricsBindAddress = "127.0.0.1:10249"
	DefaultSyncPeriod         = 30 * time.Second
	DefaultMinSyncPeriod      = time.Second
	DefaultMasqueradeBit      = int32(14)
	DefaultConntrackPerCore   = int32(32768)
	DefaultConntrackMin       = int32(131072)
	DefaultOOMScoreAdj        = int32(-999)
	DefaultConfigSyncPeriod   = 15 * time.Minute
)

// SetDefaults fills every unset field with kube-proxy's default.
func SetDefaults(c *kpconfig.KubeProxyConfiguration) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	defaultString(&c.BindAddress, "0.0.0.0")
	defaultString(&c.HealthzBindAddress, DefaultHealthzBindAddress)
	defaultString(&c.MetricsBindAddress, DefaultMetricsBindAddress)
	defaultInt32(&c.OOMScoreAdj, DefaultOOMScoreAdj)
	defaultDuration(&c.ConfigSyncPeriod, DefaultConfigSyncPeriod)
	if c.FeatureGates == nil {
		c.FeatureGates = map[string]bool{}
	}
	if c.DetectLocalMode == "" {
		c.DetectLocalMode = "ClusterCIDR"
	}
	setIPTablesDefaults(&c.IPTables)
	setNFTablesDefaults(&c.NFTables)
	defaultDuration(&c.IPVS.SyncPeriod, DefaultSyncPeriod)
	setConntrackDefaults(&c.Conntrack)
	setClientDefaults(c)
}

func setIPTablesDefaults(t *kpconfig.KubeProxyIPTablesConfiguration) {
	defaultInt32(&t.MasqueradeBit, DefaultMasqueradeBit)
	defaultDuration(&t.SyncPeriod, DefaultSyncPeriod)
	defaultDuration(&t.MinSyncPeriod, DefaultMinSyncPeriod)
	if t.LocalhostNodePorts == nil {
		yes := true
		t.LocalhostNodePorts = &yes
	}
}

func setNFTablesDefaults(t *kpconfig.KubeProxyNFTablesConfiguration) {
	defaultInt32(&t.MasqueradeBit, DefaultMasqueradeBit)
	defaultDuration(&t.SyncPeriod, DefaultSyncPeriod)
	defaultDuration(&t.MinSyncPeriod, DefaultMinSyncPeriod)
}

func setConntrackDefaults(ct *kpconfig.KubeProxyConntrackConfiguration) {
	defaultInt32(&ct.MaxPerCore, DefaultConntrackPerCore)
	defaultInt32(&ct.Min, DefaultConntrackMin)
	if ct.TCPEstablishedTimeout == nil {
		ct.TCPEstablishedTimeout = &metav1.Duration{Duration: 24 * time.Hour}
	}
	if ct.TCPCloseWaitTimeout == nil {
		ct.TCPCloseWaitTimeout = &metav1.Duration{Duration: time.Hour}
	}
}

func setClientDefaults(c *kpconfig.KubeProxyConfiguration) {
	cc := &c.ClientConnection
	defaultString(&cc.ContentType, "application/vnd.kubernetes.protobuf")
	defaultString(&cc.AcceptContentTypes, "application/vnd.kubernetes.protobuf,application/json")
	if cc.QPS == 0 {
		cc.QPS = 5
	}
	if cc.Burst == 0 {
		cc.Burst = 10
	}
}

func defaultString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func defaultInt32(p **int32, v int32) {
	if *p == nil {
		*p = &v
	}
}

func defaultDuration(p *metav1.Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}

// SyncPeriods returns the syncPeriod and minSyncPeriod that apply to mode. The
// userspace mode uses the iptables ones, as kube-proxy's userspace proxier did; the
// ebpf mode the nftables ones (SettingsMode).
func SyncPeriods(c *kpconfig.KubeProxyConfiguration) (sync, min time.Duration) {
	switch SettingsMode(Mode(c)) {
	case ModeIPVS:
		return c.IPVS.SyncPeriod.Duration, c.IPVS.MinSyncPeriod.Duration
	case ModeNFTables:
		return c.NFTables.SyncPeriod.Duration, c.NFTables.MinSyncPeriod.Duration
	default:
		return c.IPTables.SyncPeriod.Duration, c.IPTables.MinSyncPeriod.Duration
	}
}
