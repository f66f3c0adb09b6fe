package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/dataplane"
)

// Cleanup runs every registered mode's Cleanup (kube-proxy --cleanup), reporting
// each mode's outcome on out. It fails when any mode failed.
func Cleanup(ctx context.Context, c *kpconfig.KubeProxyConfiguration, out io.Writer, log *slog.Logger) error {
	var errs []error
	opts := dataplane.Options{Config: c, NodeName: NodeName(c), Logger: log}
	for _, name := range dataplane.Names() {
		m, err := dataplane.Lookup(name)
		if err == nil && m.Cleanup != nil {
			err = m.Cleanup(ctx, opts)
		}
		if err != nil {
			fmt.Fprintf(out, "cleanup %s: FAILED: %v\n", name, err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		fmt.Fprintf(out, "cleanup %s: ok\n", name)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup failed: %w", errors.Join(errs...))
	}
	return nil
}
