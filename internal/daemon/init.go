package daemon

import (
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
)

// InitOnly is kube-proxy's --init-only: do the start-up steps that need full
// root privileges, then exit, so that the daemon can run with CAP_NET_ADMIN only.
// kube-proxy's such steps are the conntrack sysctls; kproxy does not tune them
// (see docs/operations.md) and sets everything else up when the mode starts,
// so there is nothing to do: the configuration has been loaded and validated,
// which is what an init container can usefully check.
func InitOnly(c *kpconfig.KubeProxyConfiguration, log *slog.Logger) error {
	log.Info("--init-only: nothing needs more than CAP_NET_ADMIN in kproxy; configuration is valid, exiting",
		"mode", config.Mode(c))
	return nil
}
