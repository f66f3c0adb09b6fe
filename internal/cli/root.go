// Package cli holds kproxy's cobra commands: the daemon (root), list, bench, version.
package cli

import "github.com/spf13/cobra"

// NewRootCommand builds `kproxy`: the proxy daemon, with its subcommands.
func NewRootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "kproxy",
		Short:         "A Kubernetes Service proxy: iptables, ipvs, nftables and userspace modes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range subcommands {
		cmd.AddCommand(f())
	}
	return cmd
}
