package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// FieldError is one invalid field, named by its path in the config file.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ErrorList collects every invalid field, so that one run reports them all.
type ErrorList []FieldError

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return "invalid " + Kind + ": " + strings.Join(parts, "; ")
}

type validator struct{ errs ErrorList }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the effective configuration the way kube-proxy's validation does,
// for the fields kproxy uses. It returns nil or an ErrorList.
func Validate(c *kpconfig.KubeProxyConfiguration) error {
	v := &validator{}
	if c.Mode != "" && !slices.Contains(Modes, string(c.Mode)) {
		v.add("mode", "unknown proxy mode %q (valid: %s)", c.Mode, strings.Join(Modes, ", "))
	}
	v.syncPeriods("iptables", c.IPTables.SyncPeriod, c.IPTables.MinSyncPeriod)
	v.syncPeriods("nftables", c.NFTables.SyncPeriod, c.NFTables.MinSyncPeriod)
	v.masqueradeBit("iptables.masqueradeBit", c.IPTables.MasqueradeBit)
	v.masqueradeBit("nftables.masqueradeBit", c.NFTables.MasqueradeBit)
	if Mode(c) == ModeIPVS {
		v.syncPeriods("ipvs", c.IPVS.SyncPeriod, c.IPVS.MinSyncPeriod)
		v.ipvs(&c.IPVS)
	}
	v.conntrack(&c.Conntrack)
	v.gates(c)
	v.detectLocal(c)
	v.logging(c)
	v.hostPort("healthzBindAddress", c.HealthzBindAddress)
	v.hostPort("metricsBindAddress", c.MetricsBindAddress)
	if c.BindAddress != "" {
		if _, err := netip.ParseAddr(c.BindAddress); err != nil {
			v.add("bindAddress", "%q is not a valid IP address", c.BindAddress)
		}
	}
	v.clusterCIDR(c.ClusterCIDR)
	v.nodePortAddresses(c.NodePortAddresses)
	if c.ConfigSyncPeriod.Duration <= 0 {
		v.add("configSyncPeriod", "must be greater than 0")
	}
	if c.OOMScoreAdj != nil && (*c.OOMScoreAdj < -1000 || *c.OOMScoreAdj > 1000) {
		v.add("oomScoreAdj", "must be within the range [-1000, 1000]")
	}
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (v *validator) syncPeriods(prefix string, sync, min metav1.Duration) {
	if sync.Duration <= 0 {
		v.add(prefix+".syncPeriod", "must be greater than 0")
	}
	if min.Duration < 0 {
		v.add(prefix+".minSyncPeriod", "must be greater than or equal to 0")
	}
	if sync.Duration > 0 && min.Duration > sync.Duration {
		v.add(prefix+".minSyncPeriod", "must be less than or equal to %s.syncPeriod (%s)", prefix, sync.Duration)
	}
}

func (v *validator) masqueradeBit(path string, bit *int32) {
	if bit != nil && (*bit < 0 || *bit > 31) {
		v.add(path, "must be within the range [0, 31]")
	}
}

func (v *validator) ipvs(c *kpconfig.KubeProxyIPVSConfiguration) {
	for name, d := range map[string]time.Duration{
		"ipvs.tcpTimeout": c.TCPTimeout.Duration, "ipvs.tcpFinTimeout": c.TCPFinTimeout.Duration,
		"ipvs.udpTimeout": c.UDPTimeout.Duration,
	} {
		if d < 0 {
			v.add(name, "must be greater than or equal to 0")
		}
	}
	for i, cidr := range c.ExcludeCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			v.add(fmt.Sprintf("ipvs.excludeCIDRs[%d]", i), "%q is not a valid CIDR", cidr)
		}
	}
}

func (v *validator) conntrack(c *kpconfig.KubeProxyConntrackConfiguration) {
	if c.MaxPerCore != nil && *c.MaxPerCore < 0 {
		v.add("conntrack.maxPerCore", "must be greater than or equal to 0")
	}
	if c.Min != nil && *c.Min < 0 {
		v.add("conntrack.min", "must be greater than or equal to 0")
	}
	for name, d := range map[string]*metav1.Duration{
		"conntrack.tcpEstablishedTimeout": c.TCPEstablishedTimeout,
		"conntrack.tcpCloseWaitTimeout":   c.TCPCloseWaitTimeout,
		"conntrack.udpTimeout":            &c.UDPTimeout,
		"conntrack.udpStreamTimeout":      &c.UDPStreamTimeout,
	} {
		if d != nil && d.Duration < 0 {
			v.add(name, "must be greater than or equal to 0")
		}
	}
}

// hostPort accepts "" (server disabled) or "ip:port".
func (v *validator) hostPort(path, addr string) {
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "%q must be IP:port", addr)
		return
	}
	if _, err := netip.ParseAddr(host); err != nil {
		v.add(path, "%q: %q is not a valid IP address", addr, host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(path, "%q: port must be within the range [0, 65535]", addr)
	}
}

func (v *validator) clusterCIDR(s string) {
	if s == "" {
		return
	}
	cidrs := strings.Split(s, ",")
	if len(cidrs) > 2 {
		v.add("clusterCIDR", "%q: at most one CIDR per IP family", s)
	}
	for _, c := range cidrs {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			v.add("clusterCIDR", "%q is not a valid CIDR", c)
		}
	}
}

func (v *validator) nodePortAddresses(list []string) {
	for i, a := range list {
		switch a {
		case "primary", "localhost", "all":
			continue
		}
		if _, err := netip.ParsePrefix(a); err != nil {
			v.add(fmt.Sprintf("nodePortAddresses[%d]", i), "%q must be a CIDR or one of primary, localhost, all", a)
		}
	}
}

// AsErrorList unwraps an ErrorList, for callers that want each field.
func AsErrorList(err error) (ErrorList, bool) {
	var l ErrorList
	ok := errors.As(err, &l)
	return l, ok
}
