//go:build linux

package nftables

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/dataplane"
)

// kubeProxyTable is the table kube-proxy's nftables mode owns in each family
// ("ip kube-proxy", "ip6 kube-proxy"). kproxy never writes it; it removes it when it
// cleans up, as kube-proxy does, so that a node moving from kube-proxy's nftables mode
// to any kproxy mode keeps no stale rules.
const kubeProxyTable = "kube-proxy"

func init() {
	dataplane.Register(dataplane.Mode{Name: ModeName, New: New, Cleanup: cleanupMode, KernelNAT: true,
		CleanupKubeProxy: func(context.Context, dataplane.Options) error { return deleteForeignTables(0, kubeProxyTable) }})
}

// cleanupMode is the mode's Cleanup (kproxy --cleanup, and the start of another
// mode): kproxy's own tables and kube-proxy's.
func cleanupMode(ctx context.Context, o dataplane.Options) error {
	return errors.Join(deleteTables(0), deleteForeignTables(0, kubeProxyTable))
}

// deleteForeignTables removes the named table in both families, if present, in one
// transaction per family. Unlike deleteTables it never creates the table, so a node
// without it sees no change at all.
func deleteForeignTables(nsFD int, name string) error {
	conn, err := nftables.New(nsOptions(nsFD)...)
	if err != nil {
		return fmt.Errorf("nftables cleanup: netlink: %w", err)
	}
	var errs []error
	for _, tf := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		tables, err := conn.ListTablesOfFamily(tf)
		if err != nil {
			errs = append(errs, fmt.Errorf("nftables cleanup: list tables: %w", err))
			continue
		}
		for _, t := range tables {
			if t.Name == name {
				conn.DelTable(t)
			}
		}
	}
	if err := conn.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("nftables cleanup: delete table %s: %w", name, err))
	}
	return errors.Join(errs...)
}
