//go:build !linux

package daemon

import (
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"
)

// tuneConntrack does nothing off Linux: there is no netfilter conntrack.
func tuneConntrack(string, *kpconfig.KubeProxyConfiguration, *slog.Logger) {}
