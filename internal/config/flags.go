package config

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// Flags are the daemon's command-line flags. Config-file flags (kube-proxy's names)
// are bound to a defaulted configuration so that --help shows the defaults. As in
// kube-proxy, without --config the flags given on the command line set the
// configuration; with --config the file wins and only the logging flags and
// --hostname-override still apply (the others are named in a warning).
type Flags struct {
	ConfigFile       string
	ServicesFrom     string
	AdminBindAddress string
	Cleanup          bool
	InitOnly         bool
	Master           string
	WriteConfigTo    string
	DemoBackends     []string
	// Userspace relay limits (kproxy's own): 0 means the default, negative no limit.
	UserspaceMaxConns          int
	UserspaceMaxConnsPerClient int
	UserspaceIdleTimeout       time.Duration

	hostnameOverride string
	healthzPort      int32
	metricsPort      int32
	v                kpconfig.KubeProxyConfiguration
	fs               *pflag.FlagSet
}

// DefaultAdminBindAddress is empty: `kproxy list` reads GET /list from the metrics
// server (127.0.0.1:10249). --admin-bind-address opens an extra listener for it.
const DefaultAdminBindAddress = ""

// overrides copies one flag's value from the flag-bound config into the effective one.
var overrides = map[string]func(dst, src *kpconfig.KubeProxyConfiguration){
	"proxy-mode": func(d, s *kpconfig.KubeProxyConfiguration) { d.Mode = s.Mode },
	"kubeconfig": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.ClientConnection.Kubeconfig = s.ClientConnection.Kubeconfig
	},
	"feature-gates":     func(d, s *kpconfig.KubeProxyConfiguration) { d.FeatureGates = s.FeatureGates },
	"detect-local-mode": func(d, s *kpconfig.KubeProxyConfiguration) { d.DetectLocalMode = s.DetectLocalMode },
	"pod-bridge-interface": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.DetectLocal.BridgeInterface = s.DetectLocal.BridgeInterface
	},
	"pod-interface-name-prefix": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.DetectLocal.InterfaceNamePrefix = s.DetectLocal.InterfaceNamePrefix
	},
	"show-hidden-metrics-for-version": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.ShowHiddenMetricsForVersion = s.ShowHiddenMetricsForVersion
	},
	"metrics-bind-address":   func(d, s *kpconfig.KubeProxyConfiguration) { d.MetricsBindAddress = s.MetricsBindAddress },
	"healthz-bind-address":   func(d, s *kpconfig.KubeProxyConfiguration) { d.HealthzBindAddress = s.HealthzBindAddress },
	"bind-address":           func(d, s *kpconfig.KubeProxyConfiguration) { d.BindAddress = s.BindAddress },
	"bind-address-hard-fail": func(d, s *kpconfig.KubeProxyConfiguration) { d.BindAddressHardFail = s.BindAddressHardFail },
	"cluster-cidr":           func(d, s *kpconfig.KubeProxyConfiguration) { d.ClusterCIDR = s.ClusterCIDR },
	"nodeport-addresses":     func(d, s *kpconfig.KubeProxyConfiguration) { d.NodePortAddresses = s.NodePortAddresses },
	"masquerade-all": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.IPTables.MasqueradeAll, d.NFTables.MasqueradeAll = s.IPTables.MasqueradeAll, s.IPTables.MasqueradeAll
	},
	"iptables-masquerade-bit": func(d, s *kpconfig.KubeProxyConfiguration) { d.IPTables.MasqueradeBit = s.IPTables.MasqueradeBit },
	// kube-proxy's --iptables-*sync-period set the sync periods of every mode but ipvs.
	"iptables-sync-period": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.IPTables.SyncPeriod, d.NFTables.SyncPeriod = s.IPTables.SyncPeriod, s.IPTables.SyncPeriod
	},
	"iptables-min-sync-period": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.IPTables.MinSyncPeriod, d.NFTables.MinSyncPeriod = s.IPTables.MinSyncPeriod, s.IPTables.MinSyncPeriod
	},
	"iptables-localhost-nodeports": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.IPTables.LocalhostNodePorts = s.IPTables.LocalhostNodePorts
	},
	"ipvs-scheduler":         func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.Scheduler = s.IPVS.Scheduler },
	"ipvs-sync-period":       func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.SyncPeriod = s.IPVS.SyncPeriod },
	"ipvs-min-sync-period":   func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.MinSyncPeriod = s.IPVS.MinSyncPeriod },
	"ipvs-strict-arp":        func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.StrictARP = s.IPVS.StrictARP },
	"ipvs-exclude-cidrs":     func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.ExcludeCIDRs = s.IPVS.ExcludeCIDRs },
	"ipvs-tcp-timeout":       func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.TCPTimeout = s.IPVS.TCPTimeout },
	"ipvs-tcpfin-timeout":    func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.TCPFinTimeout = s.IPVS.TCPFinTimeout },
	"ipvs-udp-timeout":       func(d, s *kpconfig.KubeProxyConfiguration) { d.IPVS.UDPTimeout = s.IPVS.UDPTimeout },
	"conntrack-max-per-core": func(d, s *kpconfig.KubeProxyConfiguration) { d.Conntrack.MaxPerCore = s.Conntrack.MaxPerCore },
	"conntrack-min":          func(d, s *kpconfig.KubeProxyConfiguration) { d.Conntrack.Min = s.Conntrack.Min },
	"conntrack-tcp-timeout-established": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Conntrack.TCPEstablishedTimeout = s.Conntrack.TCPEstablishedTimeout
	},
	"conntrack-tcp-timeout-close-wait": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Conntrack.TCPCloseWaitTimeout = s.Conntrack.TCPCloseWaitTimeout
	},
	"conntrack-tcp-be-liberal": func(d, s *kpconfig.KubeProxyConfiguration) { d.Conntrack.TCPBeLiberal = s.Conntrack.TCPBeLiberal },
	"conntrack-udp-timeout":    func(d, s *kpconfig.KubeProxyConfiguration) { d.Conntrack.UDPTimeout = s.Conntrack.UDPTimeout },
	"conntrack-udp-timeout-stream": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Conntrack.UDPStreamTimeout = s.Conntrack.UDPStreamTimeout
	},
	"config-sync-period": func(d, s *kpconfig.KubeProxyConfiguration) { d.ConfigSyncPeriod = s.ConfigSyncPeriod },
	"oom-score-adj":      func(d, s *kpconfig.KubeProxyConfiguration) { d.OOMScoreAdj = s.OOMScoreAdj },
	"kube-api-qps":       func(d, s *kpconfig.KubeProxyConfiguration) { d.ClientConnection.QPS = s.ClientConnection.QPS },
	"kube-api-burst":     func(d, s *kpconfig.KubeProxyConfiguration) { d.ClientConnection.Burst = s.ClientConnection.Burst },
	"kube-api-content-type": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.ClientConnection.ContentType = s.ClientConnection.ContentType
	},
	"profiling": func(d, s *kpconfig.KubeProxyConfiguration) { d.EnableProfiling = s.EnableProfiling },
}

// AddFlags registers every flag on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	f.fs = fs
	SetDefaults(&f.v)
	f.addOwnFlags(fs)
	f.addConfigFlags(fs)
}

func (f *Flags) addOwnFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.ConfigFile, "config", "", "Path to a KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1). "+
		"As in kube-proxy, the file wins: the other config flags are then ignored, except the logging flags and --hostname-override")
	fs.StringVar(&f.WriteConfigTo, "write-config-to", "", "Write the effective configuration (file, defaults and flags) to this file, then exit")
	fs.BoolVar(&f.Cleanup, "cleanup", false, "Remove what every proxy mode (kproxy's and kube-proxy's) left behind, then exit")
	fs.BoolVar(&f.InitOnly, "init-only", false, "Do the start-up steps that need full root privileges (the conntrack sysctls), then exit")
	fs.StringVar(&f.Master, "master", "", "The address of the Kubernetes API server (overrides any value in kubeconfig)")
	fs.StringVar(&f.hostnameOverride, "hostname-override", "", "The name of this node, if not the hostname; applies even with --config")
	fs.StringVar(&f.ServicesFrom, "services-from", "", "A file or directory of Service, EndpointSlice and Node manifests (YAML or JSON) to proxy instead of a cluster; watched for changes")
	fs.StringVar(&f.AdminBindAddress, "admin-bind-address", DefaultAdminBindAddress, "An extra listener for GET /list (kproxy list); /list is always served on the metrics address")
	fs.StringSliceVar(&f.DemoBackends, "demo-backends", nil, "Serve tiny demo backends (HTTP over TCP, echo over UDP) on these ip:port addresses, answering with their own address")
	fs.Int32Var(&f.healthzPort, "healthz-port", 10256, "The port of the health check server; 0 disables it")
	_ = fs.MarkDeprecated("healthz-port", "use --healthz-bind-address instead")
	fs.Int32Var(&f.metricsPort, "metrics-port", 10249, "The port of the metrics server; 0 disables it")
	_ = fs.MarkDeprecated("metrics-port", "use --metrics-bind-address instead")
	fs.IntVar(&f.UserspaceMaxConns, "userspace-max-conns", 0, "userspace mode: most TCP connections and UDP flows relayed at once; 0 means a quarter of the file descriptor limit, -1 no limit")
	fs.IntVar(&f.UserspaceMaxConnsPerClient, "userspace-max-conns-per-client", 0, "userspace mode: most connections and flows from one client address (IPv6: one /64); 0 means an eighth of --userspace-max-conns, -1 no limit")
	fs.DurationVar(&f.UserspaceIdleTimeout, "userspace-idle-timeout", 0, "userspace mode: close a relayed TCP connection idle this long; 0 means 15m, -1s never")
}

func (f *Flags) addConfigFlags(fs *pflag.FlagSet) {
	c := &f.v
	fs.StringVar((*string)(&c.Mode), "proxy-mode", "", "Which proxy mode to use: userspace, iptables, ipvs or nftables (empty means iptables)")
	fs.StringVar(&c.ClientConnection.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig file; watch Services and EndpointSlices from that cluster")
	fs.Var(gatesFlag{&c.FeatureGates}, "feature-gates", "A set of key=value pairs for feature gates. Options are:\n"+strings.Join(KnownFeatures(), "\n"))
	fs.StringVar((*string)(&c.DetectLocalMode), "detect-local-mode", "", "How local traffic is told: ClusterCIDR (kproxy implements only this)")
	fs.StringVar(&c.DetectLocal.BridgeInterface, "pod-bridge-interface", "", "The pods' bridge, for --detect-local-mode=BridgeInterface (not implemented; warned)")
	fs.StringVar(&c.DetectLocal.InterfaceNamePrefix, "pod-interface-name-prefix", "", "The pods' interface name prefix, for --detect-local-mode=InterfaceNamePrefix (not implemented; warned)")
	fs.StringVar(&c.ShowHiddenMetricsForVersion, "show-hidden-metrics-for-version", "", "Accepted for kube-proxy compatibility; kproxy hides no metrics")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", c.MetricsBindAddress, "IP:port for /metrics, /proxyMode and /healthz; empty disables it")
	fs.StringVar(&c.HealthzBindAddress, "healthz-bind-address", c.HealthzBindAddress, "IP:port for /healthz and /livez; empty disables it")
	fs.StringVar(&c.BindAddress, "bind-address", c.BindAddress, "This node's primary IP (kube-proxy's historical name)")
	fs.BoolVar(&c.BindAddressHardFail, "bind-address-hard-fail", false, "Exit when the healthz or metrics port cannot be bound")
	fs.StringVar(&c.ClusterCIDR, "cluster-cidr", "", "The pod CIDR(s) of the cluster, comma separated (one per IP family)")
	fs.StringSliceVar(&c.NodePortAddresses, "nodeport-addresses", nil, "CIDRs or primary/localhost/all: the node addresses NodePorts are served on")
	fs.BoolVar(&c.IPTables.MasqueradeAll, "masquerade-all", false, "SNAT all traffic sent to Service cluster IPs")
	fs.Int32Var(c.IPTables.MasqueradeBit, "iptables-masquerade-bit", *c.IPTables.MasqueradeBit, "The fwmark bit (0-31) marking packets to SNAT")
	fs.DurationVar(&c.IPTables.SyncPeriod.Duration, "iptables-sync-period", c.IPTables.SyncPeriod.Duration, "The period of full resyncs (iptables and userspace modes)")
	fs.DurationVar(&c.IPTables.MinSyncPeriod.Duration, "iptables-min-sync-period", c.IPTables.MinSyncPeriod.Duration, "The minimum time between two syncs (iptables and userspace modes)")
	fs.BoolVar(c.IPTables.LocalhostNodePorts, "iptables-localhost-nodeports", true, "Accept NodePort traffic on localhost (iptables mode, IPv4)")
	fs.StringVar(&c.IPVS.Scheduler, "ipvs-scheduler", "", "The IPVS scheduler (default rr)")
	fs.DurationVar(&c.IPVS.SyncPeriod.Duration, "ipvs-sync-period", c.IPVS.SyncPeriod.Duration, "The period of full resyncs (ipvs mode)")
	fs.DurationVar(&c.IPVS.MinSyncPeriod.Duration, "ipvs-min-sync-period", 0, "The minimum time between two syncs (ipvs mode)")
	fs.BoolVar(&c.IPVS.StrictARP, "ipvs-strict-arp", false, "Set arp_ignore=1 and arp_announce=2")
	fs.StringSliceVar(&c.IPVS.ExcludeCIDRs, "ipvs-exclude-cidrs", nil, "CIDRs whose IPVS rules kproxy must not touch")
	fs.DurationVar(&c.IPVS.TCPTimeout.Duration, "ipvs-tcp-timeout", 0, "IPVS idle TCP timeout (0 keeps the current value)")
	fs.DurationVar(&c.IPVS.TCPFinTimeout.Duration, "ipvs-tcpfin-timeout", 0, "IPVS TCP FIN_WAIT timeout (0 keeps the current value)")
	fs.DurationVar(&c.IPVS.UDPTimeout.Duration, "ipvs-udp-timeout", 0, "IPVS UDP timeout (0 keeps the current value)")
	f.addConntrackFlags(fs)
	f.addClientFlags(fs)
	f.addLoggingFlags(fs)
}

func (f *Flags) addConntrackFlags(fs *pflag.FlagSet) {
	ct := &f.v.Conntrack
	fs.Int32Var(ct.MaxPerCore, "conntrack-max-per-core", *ct.MaxPerCore, "Conntrack entries to allow per CPU core (0 leaves the limit alone)")
	fs.Int32Var(ct.Min, "conntrack-min", *ct.Min, "The minimum conntrack table size")
	fs.DurationVar(&ct.TCPEstablishedTimeout.Duration, "conntrack-tcp-timeout-established", ct.TCPEstablishedTimeout.Duration, "Idle timeout of established TCP connections (0 leaves it alone)")
	fs.DurationVar(&ct.TCPCloseWaitTimeout.Duration, "conntrack-tcp-timeout-close-wait", ct.TCPCloseWaitTimeout.Duration, "Timeout of TCP connections in CLOSE_WAIT")
	fs.BoolVar(&ct.TCPBeLiberal, "conntrack-tcp-be-liberal", false, "Do not mark out-of-window TCP packets INVALID")
	fs.DurationVar(&ct.UDPTimeout.Duration, "conntrack-udp-timeout", 0, "Idle timeout of UNREPLIED UDP flows (0 leaves it alone)")
	fs.DurationVar(&ct.UDPStreamTimeout.Duration, "conntrack-udp-timeout-stream", 0, "Idle timeout of ASSURED UDP flows (0 leaves it alone)")
}

func (f *Flags) addClientFlags(fs *pflag.FlagSet) {
	c := &f.v
	fs.DurationVar(&c.ConfigSyncPeriod.Duration, "config-sync-period", c.ConfigSyncPeriod.Duration, "How often the informers relist from the API server")
	fs.Int32Var(c.OOMScoreAdj, "oom-score-adj", *c.OOMScoreAdj, "The oom-score-adj of the kproxy process, in [-1000, 1000]")
	fs.Float32Var(&c.ClientConnection.QPS, "kube-api-qps", c.ClientConnection.QPS, "QPS to use while talking to the API server")
	fs.Int32Var(&c.ClientConnection.Burst, "kube-api-burst", c.ClientConnection.Burst, "Burst to use while talking to the API server")
	fs.StringVar(&c.ClientConnection.ContentType, "kube-api-content-type", c.ClientConnection.ContentType, "Content type of requests sent to the API server")
	fs.BoolVar(&c.EnableProfiling, "profiling", false, "Serve /debug/pprof on the metrics address")
}

// Config builds the effective configuration as kube-proxy does: the defaults and
// the config flags given on the command line, or, with --config, the file plus the
// logging flags; then --hostname-override; then validation. Notes carry the file's
// warnings and the flags --config made ignored.
func (f *Flags) Config() (*kpconfig.KubeProxyConfiguration, Notes, error) {
	c := Default()
	var notes Notes
	if f.ConfigFile != "" {
		var err error
		if c, notes, err = Load(f.ConfigFile); err != nil {
			return nil, notes, err
		}
		notes.Warnings = append(notes.Warnings, f.applyLoggingFlags(c)...)
	} else {
		f.applyFlags(c)
		f.applyDeprecatedPorts(c)
	}
	if f.hostnameOverride != "" {
		c.HostnameOverride = strings.ToLower(strings.TrimSpace(f.hostnameOverride))
		if c.HostnameOverride == "" {
			return nil, notes, FieldError{Path: "hostnameOverride", Msg: "--hostname-override is blank"}
		}
	}
	c.Mode = kpconfig.ProxyMode(strings.TrimSpace(string(c.Mode)))
	if err := Validate(c); err != nil {
		return nil, notes, err
	}
	return c, notes, nil
}

// applyFlags copies every config flag given on the command line into c.
func (f *Flags) applyFlags(c *kpconfig.KubeProxyConfiguration) {
	if f.fs == nil {
		return
	}
	f.fs.Visit(func(fl *pflag.Flag) {
		if apply := overrides[fl.Name]; apply != nil {
			apply(c, &f.v)
		}
	})
}

// applyLoggingFlags copies the logging flags given into the file's configuration
// (they win over the file, as in kube-proxy) and names every other config flag
// given, which the file overrides.
func (f *Flags) applyLoggingFlags(c *kpconfig.KubeProxyConfiguration) []Warning {
	if f.fs == nil {
		return nil
	}
	var ignored []string
	f.fs.Visit(func(fl *pflag.Flag) {
		if apply := loggingOverrides[fl.Name]; apply != nil {
			apply(c, &f.v)
		} else if overrides[fl.Name] != nil || fl.Name == "healthz-port" || fl.Name == "metrics-port" {
			ignored = append(ignored, "--"+fl.Name)
		}
	})
	if len(ignored) == 0 {
		return nil
	}
	return []Warning{{Field: "flags", Msg: strings.Join(ignored, ", ") + " ignored: --config is given and the file " +
		"wins, as in kube-proxy (only the logging flags and --hostname-override override it)"}}
}

// applyDeprecatedPorts applies the hidden --healthz-port and --metrics-port as
// kube-proxy does without --config: 0 disables the server, another port is used
// only when the address has none.
func (f *Flags) applyDeprecatedPorts(c *kpconfig.KubeProxyConfiguration) {
	c.HealthzBindAddress = addressWithPort(c.HealthzBindAddress, f.healthzPort)
	c.MetricsBindAddress = addressWithPort(c.MetricsBindAddress, f.metricsPort)
}

func addressWithPort(addr string, port int32) string {
	if port == 0 {
		return ""
	}
	if addr == "" {
		return addr
	}
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(int(port)))
}
