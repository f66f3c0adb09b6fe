//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kproxy.dev/kproxy/internal/bench"
	"kproxy.dev/kproxy/internal/dataplane"
)

func init() {
	registerBenchCommand(newBenchSyncCommand)
	registerBenchCommand(newBenchMeasureCommand)
}

type benchSyncFlags struct {
	mode         string
	services     []int
	endpoints    int
	partialRuns  int
	endpointRuns int
	json         bool
	memProfile   string
}

func newBenchSyncCommand() *cobra.Command {
	f := &benchSyncFlags{}
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Time render, cold full sync, one-Service change and the kernel's own apply for one mode",
		Long: `Loads N ClusterIP Services (10.96.x.y:80/TCP, E endpoints each at 10.a.b.c:8080 in 10.128.0.0/11)
into a fresh private network namespace and reports, per N: render time, cold full
sync, the median of one-Service changes (one Service added and one endpoint of
another moved), the rule count, and the time the kernel's own tool needs to load
the same ruleset into empty state (baseline). Needs root; the host's own firewall
is never touched. Modes that do not implement dataplane.Bencher report render and
baseline as null.`,
		Example: "  kproxy bench sync --mode iptables --services 1000,10000 --endpoints 3 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchSync(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mode, "mode", "", "proxy mode to measure (required)")
	fl.IntSliceVar(&f.services, "services", []int{1000}, "numbers of Services, comma separated")
	fl.IntVar(&f.endpoints, "endpoints", 3, "endpoints per Service")
	fl.IntVar(&f.partialRuns, "partial-runs", 3, "one-Service changes to time (the median is reported)")
	fl.IntVar(&f.endpointRuns, "endpoint-runs", 0, "one-endpoint changes to time (the median is reported; 0: none)")
	fl.BoolVar(&f.json, "json", false, "print one JSON array, one object per number of Services")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a pprof heap profile of the measuring process after the syncs to `FILE` (FILE.N per number of Services N when several)")
	_ = cmd.MarkFlagRequired("mode")
	return cmd
}

// checkBenchArgs rejects what would fail late, before any namespace is created.
func checkBenchArgs(services []int, endpoints int) error {
	if os.Geteuid() != 0 {
		return errors.New("bench must run as root: it creates private network namespaces and programs the kernel inside them")
	}
	if len(services) == 0 {
		return errors.New("--services: give at least one number of Services")
	}
	for _, n := range services {
		if n < 1 || n > bench.MaxServices {
			return fmt.Errorf("--services: %d out of range 1..%d", n, bench.MaxServices)
		}
	}
	if endpoints < 1 {
		return fmt.Errorf("--endpoints: %d, want at least 1", endpoints)
	}
	return nil
}

func runBenchSync(cmd *cobra.Command, f *benchSyncFlags) error {
	if _, err := dataplane.Lookup(f.mode); err != nil {
		return fmt.Errorf("--mode: %w", err)
	}
	if err := checkBenchArgs(f.services, f.endpoints); err != nil {
		return err
	}
	if f.memProfile != "" {
		abs, err := filepath.Abs(f.memProfile)
		if err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
		f.memProfile = abs
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := cmd.ErrOrStderr()
	var results []bench.Result
	for i, n := range f.services {
		fmt.Fprintf(progress, "[%d/%d] %s, %s Services x %d endpoints\n", i+1, len(f.services), f.mode, bench.FormatCount(n), f.endpoints)
		start := time.Now()
		spec := bench.Spec{Mode: f.mode, Services: n, Endpoints: f.endpoints, PartialRuns: f.partialRuns, EndpointRuns: f.endpointRuns, MemProfile: f.memProfile}
		if f.memProfile != "" && len(f.services) > 1 {
			spec.MemProfile = fmt.Sprintf("%s.%d", f.memProfile, n)
		}
		res, err := bench.Run(ctx, spec, bench.RunOptions{Progress: progress})
		if err != nil {
			return fmt.Errorf("bench sync --mode %s at %d Services: %w", f.mode, n, err)
		}
		fmt.Fprintf(progress, "[%d/%d] done in %s\n", i+1, len(f.services), time.Since(start).Round(time.Millisecond))
		results = append(results, *res)
	}
	return writeResults(cmd.OutOrStdout(), f.json, results, bench.WriteSyncTable)
}

func writeResults(out io.Writer, asJSON bool, results []bench.Result, table func(io.Writer, []bench.Result) error) error {
	if !asJSON {
		return table(out, results)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}

// newBenchMeasureCommand is the hidden child that `bench sync` and `bench compare`
// re-exec inside the private namespace; it refuses to run anywhere else.
func newBenchMeasureCommand() *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use:    bench.ChildCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return bench.ChildMain(ctx, spec, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&spec, bench.ChildSpecFlag, "", "measurement, as JSON")
	return cmd
}
