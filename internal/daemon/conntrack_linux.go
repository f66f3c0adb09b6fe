//go:build linux

package daemon

import (
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/conntrack"
)

// tuneConntrack applies the config's conntrack settings at start, as kube-proxy
// does, for the modes that NAT in the kernel. A failure is logged, not fatal: the
// proxy works with the kernel's defaults.
func tuneConntrack(mode string, c *kpconfig.KubeProxyConfiguration, log *slog.Logger) {
	switch config.SettingsMode(mode) {
	case config.ModeIPTables, config.ModeNFTables, config.ModeIPVS:
	default:
		return
	}
	if err := conntrack.TuneFromConfig(conntrack.NewTuner(log), c.Conntrack); err != nil {
		log.Error("conntrack tuning failed; the kernel's values stay", "err", err)
	}
}
