// Package cli holds kproxy's cobra commands: the daemon (root), list, bench, version.
package cli

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"kproxy.dev/kproxy/internal/config"
	proxyd "kproxy.dev/kproxy/internal/daemon"
	"kproxy.dev/kproxy/internal/dataplane"
)

// NewRootCommand builds `kproxy`: the proxy daemon, with its subcommands.
func NewRootCommand() *cobra.Command {
	f := &config.Flags{}
	cmd := &cobra.Command{
		Use:           "kproxy",
		Short:         "A Kubernetes Service proxy: iptables, ipvs, nftables and userspace modes",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd, f) },
	}
	f.AddFlags(cmd.Flags())
	for _, sub := range subcommands {
		cmd.AddCommand(sub())
	}
	return cmd
}

func runDaemon(cmd *cobra.Command, f *config.Flags) error {
	c, err := f.Config()
	if err != nil {
		return err
	}
	if f.WriteConfigTo != "" {
		return config.Write(c, f.WriteConfigTo)
	}
	log := newLogger(f.Verbosity)
	slog.SetDefault(log)
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
		Config: c, ServicesFrom: f.ServicesFrom, Kubeconfig: f.Kubeconfig,
		AdminBindAddress: f.AdminBindAddress, DemoBackends: f.DemoBackends, Logger: log,
		Relay: dataplane.RelayLimits{MaxConns: f.UserspaceMaxConns,
			MaxConnsPerClient: f.UserspaceMaxConnsPerClient, IdleTimeout: f.UserspaceIdleTimeout},
	})
}

func newLogger(verbosity int) *slog.Logger {
	level := slog.LevelInfo
	if verbosity >= 4 {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
