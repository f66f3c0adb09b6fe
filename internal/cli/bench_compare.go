//go:build linux

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"kproxy.dev/kproxy/internal/bench"
	"kproxy.dev/kproxy/internal/dataplane"
)

func init() { registerBenchCommand(newBenchCompareCommand) }

type benchCompareFlags struct {
	services     []int
	endpoints    int
	modes        []string
	connects     int
	partialRuns  int
	endpointRuns int
	json         bool
	plot         string
	vm           bool
	vmModes      []string
	vmMemoryMB   int
	fromJSON     string
	noBaseline   bool
}

func newBenchCompareCommand() *cobra.Command {
	f := &benchCompareFlags{}
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Measure every mode side by side: sync time, rule count, connect latency, CPU",
		Long: `Runs every mode this kernel supports (or --modes), each in fresh private network
namespaces, and measures per mode and number of Services: cold full sync, a
one-Service change (one Service added, one endpoint moved; median of
--partial-runs), rule or object count, the connect latency (p50 and p99 of
--connects new TCP connections) to the Service matched first and to the one
matched last, through the real dataplane to a real backend in a second
namespace, and the CPU seconds of kproxy and of the kernel-apply tools during
the syncs. Prints the figures next to the commonly quoted ones. Needs root.

--vm measures ipvs inside the qemu VM of internal/vm (the host kernel
may lack IPVS); the binary must be static (CGO_ENABLED=0).`,
		Example: "  kproxy bench compare --services 1000,10000 --json --plot docs/compare.svg",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchCompare(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.IntSliceVar(&f.services, "services", []int{1000}, "numbers of Services, comma separated")
	fl.IntVar(&f.endpoints, "endpoints", 3, "endpoints per Service")
	fl.StringSliceVar(&f.modes, "modes", nil, "modes to measure, comma separated (default: every registered mode)")
	fl.IntVar(&f.connects, "connects", 1000, "new TCP connections timed per target Service")
	fl.IntVar(&f.partialRuns, "partial-runs", 3, "one-Service changes to time (the median is reported)")
	fl.IntVar(&f.endpointRuns, "endpoint-runs", 0, "one-endpoint changes to time (the median is reported; 0: none)")
	fl.BoolVar(&f.noBaseline, "no-baseline", false, "skip the baseline load (the same objects loaded one request each after the syncs; hours at 50,000+ Services in the VM)")
	fl.BoolVar(&f.json, "json", false, "print one JSON array, one object per mode and number of Services")
	fl.StringVar(&f.plot, "plot", "", "write an SVG chart to this file")
	fl.BoolVar(&f.vm, "vm", false, "measure ipvs inside the qemu test VM")
	fl.StringVar(&f.fromJSON, "from-json", "", "measure nothing: print the table (and --plot) of results saved earlier with --json")
	fl.StringSliceVar(&f.vmModes, "vm-modes", []string{"ipvs"}, "with --vm: the modes measured inside the VM (add iptables,nftables for a same-machine reference)")
	fl.IntVar(&f.vmMemoryMB, "vm-memory", 0, "with --vm: the VM's memory in MiB (0: 4096, enough for 100,000 Services x 5 in every mode)")
	return cmd
}

func runBenchCompare(cmd *cobra.Command, f *benchCompareFlags) error {
	if f.fromJSON != "" {
		return replayCompare(cmd, f)
	}
	modes, err := compareModes(f.modes, f.vm)
	if err != nil {
		return err
	}
	if err := checkBenchArgs(f.services, f.endpoints); err != nil {
		return err
	}
	if f.connects < 1 {
		return fmt.Errorf("--connects: %d, want at least 1", f.connects)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := cmd.ErrOrStderr()
	local := slices.DeleteFunc(slices.Clone(modes), func(m string) bool { return f.vm && m == "ipvs" })
	c := measureLocal(ctx, f, local, progress)
	if f.vm {
		if err := checkModes(f.vmModes); err != nil {
			return fmt.Errorf("--vm-modes: %w", err)
		}
		measureInVM(ctx, f, c, progress)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, s := range c.Skipped {
		fmt.Fprintf(progress, "skipped %s: %s\n", s.Mode, s.Reason)
	}
	return writeComparison(cmd, f, c)
}

func writeComparison(cmd *cobra.Command, f *benchCompareFlags, c *bench.Comparison) error {
	if f.plot != "" {
		if err := writePlot(f.plot, c); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "chart written to %s\n", f.plot)
	}
	if f.json {
		return writeResults(cmd.OutOrStdout(), true, orderResults(c), nil)
	}
	return bench.WriteCompareTable(cmd.OutOrStdout(), c)
}

// replayCompare renders results saved with --json, so a long run need not be
// repeated to get its table or chart.
func replayCompare(cmd *cobra.Command, f *benchCompareFlags) error {
	data, err := os.ReadFile(f.fromJSON)
	if err != nil {
		return fmt.Errorf("--from-json: %w", err)
	}
	c := &bench.Comparison{}
	if err := json.Unmarshal(data, &c.Results); err != nil {
		return fmt.Errorf("--from-json %s: want the JSON array of bench compare --json: %w", f.fromJSON, err)
	}
	return writeComparison(cmd, f, c)
}

// compareModes checks --modes against the registry; with none given it is every
// registered mode. With --vm, ipvs is measured in the VM whether or not this
// binary's host could run it.
func compareModes(requested []string, vm bool) ([]string, error) {
	if len(requested) == 0 {
		modes := dataplane.Names()
		if vm && !slices.Contains(modes, "ipvs") {
			return nil, fmt.Errorf("--vm: this kproxy has no ipvs mode (available: %v)", modes)
		}
		return bench.OrderModes(modes), nil
	}
	if err := checkModes(requested); err != nil {
		return nil, fmt.Errorf("--modes: %w", err)
	}
	return bench.OrderModes(requested), nil
}

func checkModes(modes []string) error {
	for _, m := range modes {
		if _, err := dataplane.Lookup(m); err != nil {
			return err
		}
	}
	return nil
}

// measureLocal runs each mode at each size in fresh namespaces. A mode whose
// constructor fails (the kernel lacks its facility) is skipped with the mode's
// own reason; a mode that breaks later keeps the sizes it finished.
func measureLocal(ctx context.Context, f *benchCompareFlags, modes []string, progress io.Writer) *bench.Comparison {
	c := &bench.Comparison{}
	total, k := len(modes)*len(f.services), 0
	for _, m := range modes {
		for _, n := range f.services {
			k++
			if ctx.Err() != nil {
				return c
			}
			fmt.Fprintf(progress, "[%d/%d] %s, %s Services x %d endpoints\n", k, total, m, bench.FormatCount(n), f.endpoints)
			start := time.Now()
			spec := bench.Spec{Mode: m, Services: n, Endpoints: f.endpoints, PartialRuns: f.partialRuns, EndpointRuns: f.endpointRuns, Connects: f.connects, NoBaseline: f.noBaseline}
			res, err := bench.Run(ctx, spec, bench.RunOptions{Progress: progress})
			if err != nil {
				reason := err.Error()
				if bench.StageOf(err) != bench.StageNew {
					reason = fmt.Sprintf("failed at %s Services: %v", bench.FormatCount(n), err)
				}
				c.Skipped = append(c.Skipped, bench.Skipped{Mode: m, Reason: reason})
				fmt.Fprintf(progress, "[%d/%d] %s skipped: %s\n", k, total, m, reason)
				k += len(f.services) - indexOfInt(f.services, n) - 1
				break
			}
			fmt.Fprintf(progress, "[%d/%d] done in %s\n", k, total, time.Since(start).Round(time.Millisecond))
			c.Results = append(c.Results, *res)
		}
	}
	return c
}

func indexOfInt(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func measureInVM(ctx context.Context, f *benchCompareFlags, c *bench.Comparison, progress io.Writer) {
	fmt.Fprintf(progress, "[vm] booting the test VM to measure %s (emulated: slow)\n", strings.Join(f.vmModes, ", "))
	results, err := bench.RunInVM(ctx, bench.VMOptions{
		Modes: f.vmModes, Services: f.services, Endpoints: f.endpoints,
		Connects: f.connects, PartialRuns: f.partialRuns, EndpointRuns: f.endpointRuns, Progress: progress,
		MemoryMB: f.vmMemoryMB,
	})
	if err != nil {
		c.Skipped = append(c.Skipped, bench.Skipped{Mode: strings.Join(f.vmModes, ",") + " (vm)", Reason: err.Error()})
		return
	}
	c.Results = append(c.Results, results...)
}

// orderResults lists results by size, then in column order.
func orderResults(c *bench.Comparison) []bench.Result {
	out := []bench.Result{}
	for _, n := range c.Sizes() {
		for _, m := range c.Modes() {
			for _, r := range c.Results {
				if r.Column() == m && r.Services == n {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

func writePlot(path string, c *bench.Comparison) error {
	var sizes []string
	for _, n := range c.Sizes() {
		sizes = append(sizes, strconv.Itoa(n))
	}
	title := fmt.Sprintf("kproxy bench compare: %s Services x %d endpoints; Linux %s, %d CPUs; %s",
		strings.Join(sizes, "/"), endpointsOf(c), kernelRelease(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := bench.WriteSVG(file, c, title); err != nil {
		file.Close()
		return fmt.Errorf("--plot %s: %w", path, err)
	}
	return file.Close()
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func endpointsOf(c *bench.Comparison) int {
	if len(c.Results) > 0 {
		return c.Results[0].Endpoints
	}
	return 0
}
