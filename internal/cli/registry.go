package cli

import "github.com/spf13/cobra"

// Subcommands register themselves from init functions in their own files, so that
// adding a command never means editing the root command.
var (
	subcommands      []func() *cobra.Command
	benchSubcommands []func() *cobra.Command
)

// registerCommand adds a top-level subcommand (list, version, ...).
func registerCommand(f func() *cobra.Command) { subcommands = append(subcommands, f) }

// registerBenchCommand adds a subcommand of `kproxy bench` (sync, compare, ...).
func registerBenchCommand(f func() *cobra.Command) {
	benchSubcommands = append(benchSubcommands, f)
}

func init() {
	registerCommand(newBenchCommand)
}

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure what a proxy mode costs on this kernel",
	}
	for _, f := range benchSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}
