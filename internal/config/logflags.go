package config

import (
	"time"

	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// Log formats (--logging-format, logging.format).
const (
	LogFormatText = "text"
	LogFormatJSON = "json"
)

// DefaultLogFlushFrequency is component-base's default for --log-flush-frequency.
const DefaultLogFlushFrequency = 5 * time.Second

// loggingOverrides are component-base's logging flags. They override the config
// file too, as in kube-proxy (copyLogsFromFlags).
var loggingOverrides = map[string]func(d, s *kpconfig.KubeProxyConfiguration){
	"v":                   func(d, s *kpconfig.KubeProxyConfiguration) { d.Logging.Verbosity = s.Logging.Verbosity },
	"vmodule":             func(d, s *kpconfig.KubeProxyConfiguration) { d.Logging.VModule = s.Logging.VModule },
	"logging-format":      func(d, s *kpconfig.KubeProxyConfiguration) { d.Logging.Format = s.Logging.Format },
	"log-flush-frequency": func(d, s *kpconfig.KubeProxyConfiguration) { d.Logging.FlushFrequency = s.Logging.FlushFrequency },
	"log-text-split-stream": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Logging.Options.Text.SplitStream = s.Logging.Options.Text.SplitStream
	},
	"log-text-info-buffer-size": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Logging.Options.Text.InfoBufferSize = s.Logging.Options.Text.InfoBufferSize
	},
	"log-json-split-stream": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Logging.Options.JSON.SplitStream = s.Logging.Options.JSON.SplitStream
	},
	"log-json-info-buffer-size": func(d, s *kpconfig.KubeProxyConfiguration) {
		d.Logging.Options.JSON.InfoBufferSize = s.Logging.Options.JSON.InfoBufferSize
	},
}

func init() {
	for name, fn := range loggingOverrides {
		overrides[name] = fn
	}
}

func (f *Flags) addLoggingFlags(fs *pflag.FlagSet) {
	l := &f.v.Logging
	fs.Uint32VarP((*uint32)(&l.Verbosity), "v", "v", 0, "The log level verbosity: 2 logs each sync with its duration, 4 and above debug messages")
	fs.Var(logsapi.VModuleConfigurationPflag(&l.VModule), "vmodule", "pattern=N,... per-file verbosity (accepted; not implemented, warned)")
	fs.StringVar(&l.Format, "logging-format", LogFormatText, "Sets the log format. Permitted formats: \"json\", \"text\"")
	fs.DurationVar(&l.FlushFrequency.Duration.Duration, "log-flush-frequency", DefaultLogFlushFrequency, "Maximum time between log flushes (kproxy writes every line at once)")
	fs.BoolVar(&l.Options.Text.SplitStream, "log-text-split-stream", false, "[Alpha] In text format, write error messages to stderr and info messages to stdout")
	fs.Var(&l.Options.Text.InfoBufferSize, "log-text-info-buffer-size", "[Alpha] Accepted for kube-proxy compatibility; kproxy does not buffer (warned when set)")
	fs.BoolVar(&l.Options.JSON.SplitStream, "log-json-split-stream", false, "[Alpha] In JSON format, write error messages to stderr and info messages to stdout")
	fs.Var(&l.Options.JSON.InfoBufferSize, "log-json-info-buffer-size", "[Alpha] Accepted for kube-proxy compatibility; kproxy does not buffer (warned when set)")
}

// SplitStream says whether the chosen format writes info to stdout and errors to stderr.
func SplitStream(c *kpconfig.KubeProxyConfiguration) bool {
	if c.Logging.Format == LogFormatJSON {
		return c.Logging.Options.JSON.SplitStream
	}
	return c.Logging.Options.Text.SplitStream
}
