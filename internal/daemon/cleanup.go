package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
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

// othersAtStart names, per mode, the modes whose leftovers kproxy removes when it
// starts in that mode. It follows kube-proxy (1.29 and later): starting the nftables
// mode removes the iptables and IPVS modes' rules; starting an iptables-based mode
// (iptables, ipvs) removes the nftables mode's tables, kube-proxy's `kube-proxy` ones
// as well as kproxy's. iptables and ipvs share chains (KUBE-SERVICES, ...), and each
// rewrites the shared ones on its first full sync, so neither clears the other, as in
// kube-proxy. Every kernel mode also removes the Service addresses a userspace kproxy
// left on lo. The userspace mode clears nothing: it runs without privileges, and
// leaves the kernel's rules to `kproxy --cleanup`. The ebpf mode (kproxy's own) runs
// the nftables mode's table (the same `kproxy` table) for north-south traffic, so it
// clears what the nftables mode clears but not the nftables mode; starting any other
// kernel mode detaches and unpins the ebpf mode's programs and maps (nothing when the
// pin directory is absent), whose socket LB would otherwise bypass the new mode's
// rules. A mode not listed clears nothing.
// Besides, the CleanupKubeProxy of the mode whose rules the starting mode writes
// (rulesModeOf: nftables' removes the `kube-proxy` tables) runs.
var othersAtStart = map[string][]string{
	"nftables": {"iptables", "ipvs", "userspace", "ebpf"},
	"iptables": {"nftables", "userspace", "ebpf"},
	"ipvs":     {"nftables", "userspace", "ebpf"},
	"ebpf":     {"iptables", "ipvs", "userspace"},
}

// OtherModesAtStart lists the modes whose leftovers starting mode removes.
func OtherModesAtStart(mode string) []string { return othersAtStart[mode] }

// rulesModeOf is the mode whose kernel rules starting mode writes, whose
// CleanupKubeProxy therefore runs at its start: config.SettingsMode (the ebpf mode
// writes the nftables mode's `kproxy` table for north-south traffic, so
// kube-proxy's nftables tables would shadow it as they shadow the nftables mode).
// A variable for tests.
var rulesModeOf = config.SettingsMode

// CleanupOtherModes removes the rules the other modes (kube-proxy's or kproxy's) left
// on the node, as kube-proxy does at start, so that a node switching modes keeps no
// stale rules. Failures are logged, once per mode, and returned joined; the caller
// goes on starting, as kube-proxy does.
func CleanupOtherModes(ctx context.Context, mode string, opts dataplane.Options) error {
	log := opts.Log()
	var errs []error
	// kube-proxy's rules of the same mode (or of the mode whose rules this one
	// writes) that kproxy does not adopt in place.
	rules := rulesModeOf(mode)
	if m, err := dataplane.Lookup(rules); err == nil && m.CleanupKubeProxy != nil {
		if err := m.CleanupKubeProxy(ctx, opts); err != nil {
			log.Error("removing kube-proxy's rules of the same mode failed; they may shadow kproxy's", "mode", mode, "rules", rules, "err", err)
			errs = append(errs, fmt.Errorf("cleanup kube-proxy's %s rules: %w", rules, err))
		}
	}
	for _, name := range OtherModesAtStart(mode) {
		m, err := dataplane.Lookup(name)
		if err != nil || m.Cleanup == nil {
			continue // not linked into this binary
		}
		if err := m.Cleanup(ctx, opts); err != nil {
			log.Error("removing another proxy mode's rules failed; they may shadow this mode's",
				"mode", mode, "other", name, "err", err)
			errs = append(errs, fmt.Errorf("cleanup %s: %w", name, err))
			continue
		}
		log.Debug("removed another proxy mode's leftovers", "mode", mode, "other", name)
	}
	return errors.Join(errs...)
}
