// Package cli holds kproxy's cobra commands: the daemon (root), list, bench, version.
package cli

import (
	"io"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	proxyd "kproxy.dev/kproxy/internal/daemon"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/logging"
)

// logOut and logErrOut are the log's streams; nil means stdout and stderr (tests
// replace them).
var logOut, logErrOut io.Writer

// initOnly is proxyd.InitOnly; tests replace it, since it tunes the host's
// conntrack sysctls.
var initOnly = proxyd.InitOnly

// NewRootCommand builds `kproxy`: the proxy daemon, with its subcommands.
func NewRootCommand() *cobra.Command {
	f := &config.Flags{}
	cmd := &cobra.Command{
		Use:           "kproxy",
		Short:         "A Kubernetes Service proxy: iptables, ipvs, nftables and userspace modes",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		RunE:          func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd, f) },
	}
	cmd.SetVersionTemplate("kproxy {{.Version}}\n")
	f.AddFlags(cmd.Flags())
	for _, sub := range subcommands {
		cmd.AddCommand(sub())
	}
	return cmd
}

func runDaemon(cmd *cobra.Command, f *config.Flags) error {
	c, notes, err := f.Config()
	if err != nil {
		return err
	}
	level := &slog.LevelVar{}
	log := newLogger(c, level)
	logConfigNotes(log, notes, c)
	if f.WriteConfigTo != "" {
		if err := config.Write(c, f.WriteConfigTo); err != nil {
			return err
		}
		log.Info("Wrote configuration", "file", f.WriteConfigTo)
		return nil
	}
	if f.InitOnly {
		return initOnly(c, log)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, a second one kills at once instead of waiting
		// for the drain.
		<-ctx.Done()
		stop()
	}()
	if f.Cleanup {
		return proxyd.Cleanup(ctx, c, cmd.OutOrStdout(), log)
	}
	return proxyd.Run(ctx, proxyd.Options{
		Config: c, ServicesFrom: f.ServicesFrom, Kubeconfig: kubeconfigFlag(f, c), Master: f.Master,
		AdminBindAddress: f.AdminBindAddress, DemoBackends: f.DemoBackends, Logger: log,
		Flagz: func() map[string]string { return flagValues(cmd.Flags()) }, Version: Version,
		SetVerbosity: func(v int) {
			logging.SetVerbosity(level, v)
			log.Info("verbosity changed", "v", v)
		},
		Relay: dataplane.RelayLimits{MaxConns: f.UserspaceMaxConns,
			MaxConnsPerClient: f.UserspaceMaxConnsPerClient, IdleTimeout: f.UserspaceIdleTimeout},
	})
}

// newLogger builds the logger the configuration asks for, makes it the default
// and routes klog (client-go) into it.
func newLogger(c *kpconfig.KubeProxyConfiguration, level *slog.LevelVar) *slog.Logger {
	v := int(c.Logging.Verbosity)
	level.Set(logging.V(v))
	log := logging.New(logging.Options{Format: c.Logging.Format, Level: level, SplitStream: config.SplitStream(c),
		Out: logOut, ErrOut: logErrOut})
	slog.SetDefault(log)
	logging.RouteKlog(log, v)
	return log
}

// logConfigNotes says once at start what the configuration ignores or replaces.
func logConfigNotes(log *slog.Logger, notes config.Notes, c *kpconfig.KubeProxyConfiguration) {
	for _, w := range notes.Warnings {
		log.Warn("config: "+w.Msg, "field", w.Field)
	}
	for _, w := range config.Ignored(c) {
		log.Warn("config: setting not honoured", "field", w.Field, "reason", w.Msg)
	}
	if len(notes.Defaulted) > 0 {
		log.Info("config: sync periods given as 0 take kube-proxy's defaults", "fields", strings.Join(notes.Defaulted, ","))
	}
}

// kubeconfigFlag is the kubeconfig for the daemon's --services-from conflict
// check: the flag's value when it applies (no --config).
func kubeconfigFlag(f *config.Flags, c *kpconfig.KubeProxyConfiguration) string {
	if f.ConfigFile != "" {
		return ""
	}
	return c.ClientConnection.Kubeconfig
}

// flagValues is /flagz: every flag with its current value.
func flagValues(fs *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(fl *pflag.Flag) {
		if !fl.Hidden && fl.Deprecated == "" {
			out[fl.Name] = fl.Value.String()
		}
	})
	return out
}
