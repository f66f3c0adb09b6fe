package daemon

import (
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
)

// InitOnly is kube-proxy's --init-only: do the start-up steps that need full
// root privileges, then exit, so that the daemon can run with CAP_NET_ADMIN only.
// As in kube-proxy, that is the conntrack sysctls (for the kernel modes); every
// other set-up happens when the mode starts.
func InitOnly(c *kpconfig.KubeProxyConfiguration, log *slog.Logger) error {
	mode := config.Mode(c)
	tuneConntrack(mode, c, log)
	log.Info("--init-only: initialization done, exiting", "mode", mode)
	return nil
}
