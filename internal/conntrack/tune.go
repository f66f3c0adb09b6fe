package conntrack

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/sysctl"
)

// TuneSettings are the conntrack values KubeProxyConfiguration.conntrack asks for;
// zero leaves a value as the kernel has it, as kube-proxy does.
type TuneSettings struct {
	// Max is nf_conntrack_max: max(maxPerCore × CPUs, min) when maxPerCore > 0.
	Max              int
	TCPEstablished   time.Duration
	TCPCloseWait     time.Duration
	TCPBeLiberal     bool
	UDPTimeout       time.Duration
	UDPStreamTimeout time.Duration
}

// SettingsFromConfig computes the settings kube-proxy derives from the config for a
// machine with cpus CPUs.
func SettingsFromConfig(c kpconfig.KubeProxyConntrackConfiguration, cpus int) TuneSettings {
	s := TuneSettings{TCPBeLiberal: c.TCPBeLiberal, UDPTimeout: c.UDPTimeout.Duration, UDPStreamTimeout: c.UDPStreamTimeout.Duration}
	if c.MaxPerCore != nil && *c.MaxPerCore > 0 {
		s.Max = int(*c.MaxPerCore) * cpus
		if c.Min != nil && int(*c.Min) > s.Max {
			s.Max = int(*c.Min)
		}
	}
	if c.TCPEstablishedTimeout != nil {
		s.TCPEstablished = c.TCPEstablishedTimeout.Duration
	}
	if c.TCPCloseWaitTimeout != nil {
		s.TCPCloseWait = c.TCPCloseWaitTimeout.Duration
	}
	return s
}

// Tuner writes conntrack settings. Sysctl is /proc/sys; Module is the nf_conntrack
// module's parameters directory (/sys/module/nf_conntrack/parameters), where the
// hash table size lives. Tests give both temporary directories.
type Tuner struct {
	Sysctl sysctl.Interface
	Module sysctl.Interface
	Log    *slog.Logger
}

// NewTuner returns a Tuner for the running kernel.
func NewTuner(log *slog.Logger) Tuner {
	return Tuner{Sysctl: sysctl.New(), Module: sysctl.Dir("/sys/module/nf_conntrack/parameters"), Log: log}
}

// TuneFromConfig applies the config's conntrack settings, the way kube-proxy does at
// start. See Tuner.Apply.
func TuneFromConfig(t Tuner, c kpconfig.KubeProxyConntrackConfiguration) error {
	return t.Apply(SettingsFromConfig(c, runtime.NumCPU()))
}

type tuneStep struct {
	name  string // under net.netfilter
	value int
}

func (s TuneSettings) steps() []tuneStep {
	var out []tuneStep
	if s.Max > 0 {
		out = append(out, tuneStep{"nf_conntrack_max", s.Max})
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"nf_conntrack_tcp_timeout_established", s.TCPEstablished},
		{"nf_conntrack_tcp_timeout_close_wait", s.TCPCloseWait},
		{"nf_conntrack_udp_timeout", s.UDPTimeout},
		{"nf_conntrack_udp_timeout_stream", s.UDPStreamTimeout},
	} {
		if secs := int(d.v / time.Second); secs > 0 {
			out = append(out, tuneStep{d.name, secs})
		}
	}
	if s.TCPBeLiberal {
		out = append(out, tuneStep{"nf_conntrack_tcp_be_liberal", 1})
	}
	return out
}

// Apply writes every setting that differs from the kernel's, then, when
// nf_conntrack_max could be set, grows the conntrack hash table to Max/4 buckets if
// it is smaller (the kernel does not resize it by itself). Values that cannot be written because /proc/sys or /sys is
// read-only (a container without a privileged mount) are logged once, in one
// warning naming every sysctl to set on the host, and are not an error; any other
// failure is returned (joined) after the remaining values were tried.
func (t Tuner) Apply(s TuneSettings) error {
	log := t.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var readOnly []string
	var errs []error
	maxSet := false
	for _, st := range s.steps() {
		name := "net.netfilter." + st.name
		changed, err := setIfDifferent(t.Sysctl, name, st.value)
		maxSet = maxSet || (st.name == "nf_conntrack_max" && err == nil)
		switch {
		case err != nil && sysctl.IsReadOnly(err):
			readOnly = append(readOnly, fmt.Sprintf("%s=%d", name, st.value))
		case err != nil:
			errs = append(errs, err)
		case changed:
			log.Info("set conntrack sysctl", "name", name, "value", st.value)
		}
	}
	// The hash size is global: size it only where nf_conntrack_max could be set
	// (the initial network namespace), never from inside a test namespace.
	if maxSet && t.Module != nil {
		if err := t.growHashsize(s.Max/4, log); err != nil {
			if sysctl.IsReadOnly(err) {
				readOnly = append(readOnly, fmt.Sprintf("/sys/module/nf_conntrack/parameters/hashsize=%d", s.Max/4))
			} else {
				errs = append(errs, err)
			}
		}
	}
	if len(readOnly) > 0 {
		log.Warn("conntrack tuning skipped: the kernel parameters are read-only here (a container without writable /proc/sys or /sys?); set them on the host",
			"settings", strings.Join(readOnly, " "))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("conntrack tuning: %w", err)
	}
	return nil
}

func setIfDifferent(s sysctl.Interface, name string, v int) (bool, error) {
	if cur, err := sysctl.GetInt(s, name); err == nil && cur == v {
		return false, nil
	}
	if err := sysctl.SetInt(s, name, v); err != nil {
		return false, err
	}
	return true, nil
}

func (t Tuner) growHashsize(want int, log *slog.Logger) error {
	cur, err := t.Module.Get("hashsize")
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(cur); err == nil && n >= want {
		return nil
	}
	if err := sysctl.SetInt(t.Module, "hashsize", want); err != nil {
		return err
	}
	log.Info("set conntrack hashsize", "buckets", want)
	return nil
}
