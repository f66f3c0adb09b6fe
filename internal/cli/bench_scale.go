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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kproxy.dev/kproxy/internal/bench"
)

func init() { registerBenchCommand(newBenchScaleCommand) }

type benchScaleFlags struct {
	modes               []string
	services            []int
	endpoints           []int
	oneServiceEndpoints []int
	partialRuns         int
	endpointRuns        int
	out                 string
	force               bool
	vm                  bool
	fromDir             bool
}

func newBenchScaleCommand() *cobra.Command {
	f := &benchScaleFlags{}
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Run the scale series: every cost against the number of Services, with fitted exponents",
		Long: `Measures each mode at each number of Services and endpoints per Service (the
services series), and one Service with each of --one-service-endpoints endpoints
spread over slices of 100 (the endpoints series). Each point runs in its own
child process in fresh private network namespaces, so its peak RSS is its own;
its row is written to --out as soon as it finishes, and a re-run skips every
point that has a row (--force measures them again), so a long series can be
stopped and resumed. A mode that fails at one size is not measured at the
larger sizes of that series.

Per point: cold full sync, one-Service change (one Service added and one
endpoint moved; median of --partial-runs), one-endpoint change (median of
--endpoint-runs), peak RSS of the measuring process (workload Tracker,
dataplane, syncs), CPU seconds of the syncs (kproxy and its tools).

Writes to --out: one JSON file per point, scale.json (every row and the fitted
exponents), table.md, and one log-log SVG per cost against the number of
Services (one line per mode, the least-squares exponent from 10k to 100k in
the legend), plus endpoints.svg for the endpoints series.

--vm measures ipvs inside the qemu VM of internal/vm, one boot per point (the
host kernel lacks IPVS; emulated, slow); the binary must be static.`,
		Example: `  kproxy bench scale --modes iptables,nftables,userspace --services 1000,10000,50000,100000 \
    --endpoints 3,5 --one-service-endpoints 1,100,1000,10000,100000 --out /tmp/scale`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchScale(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.modes, "modes", []string{"iptables", "nftables", "userspace"}, "modes to measure, comma separated")
	fl.IntSliceVar(&f.services, "services", []int{1000, 10000, 50000, 100000}, "numbers of Services of the services series")
	fl.IntSliceVar(&f.endpoints, "endpoints", []int{3, 5}, "endpoints per Service of the services series")
	fl.IntSliceVar(&f.oneServiceEndpoints, "one-service-endpoints", nil, "endpoints of the single Service of the endpoints series (none: no such series)")
	fl.IntVar(&f.partialRuns, "partial-runs", 3, "one-Service changes timed per point (the median is reported)")
	fl.IntVar(&f.endpointRuns, "endpoint-runs", 3, "one-endpoint changes timed per point (the median is reported)")
	fl.StringVar(&f.out, "out", "", "directory for the rows, table and charts (required)")
	fl.BoolVar(&f.force, "force", false, "measure again the points that already have a row in --out")
	fl.BoolVar(&f.vm, "vm", false, "measure the ipvs points inside the qemu test VM")
	fl.BoolVar(&f.fromDir, "report-only", false, "measure nothing: write the table and charts of the rows already in --out")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runBenchScale(cmd *cobra.Command, f *benchScaleFlags) error {
	if err := checkScaleFlags(f); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := cmd.ErrOrStderr()
	points := bench.ScalePoints(bench.OrderModes(f.modes), f.services, f.endpoints, f.oneServiceEndpoints)
	measure := func(ctx context.Context, p bench.ScalePoint) (*bench.Result, error) {
		return measureScalePoint(ctx, f, p, progress)
	}
	if f.fromDir {
		measure = func(context.Context, bench.ScalePoint) (*bench.Result, error) {
			return nil, errors.New("not measured (--report-only)")
		}
	}
	run, err := bench.RunScale(ctx, points, bench.ScaleOptions{
		Store: bench.ScaleStore{Dir: f.out}, Force: f.force && !f.fromDir, Measure: measure, Progress: progress,
	})
	if err != nil {
		return err
	}
	if err := writeScaleReport(f.out, run.Rows); err != nil {
		return err
	}
	fmt.Fprintf(progress, "table, scale.json and charts written to %s\n", f.out)
	if err := bench.WriteScaleTable(cmd.OutOrStdout(), run.Rows); err != nil {
		return err
	}
	if len(run.Failed) > 0 && !f.fromDir {
		var msgs []string
		for _, fl := range run.Failed {
			msgs = append(msgs, fmt.Sprintf("%s: %v", fl.Point, fl.Err))
		}
		return fmt.Errorf("%d of %d points failed:\n  %s", len(run.Failed), len(points), strings.Join(msgs, "\n  "))
	}
	return nil
}

func checkScaleFlags(f *benchScaleFlags) error {
	if err := checkModes(f.modes); err != nil {
		return fmt.Errorf("--modes: %w", err)
	}
	if f.fromDir {
		return nil
	}
	for _, e := range f.endpoints {
		if err := checkBenchArgs(f.services, e); err != nil {
			return err
		}
	}
	for _, e := range f.oneServiceEndpoints {
		if err := checkBenchArgs([]int{1}, e); err != nil {
			return fmt.Errorf("--one-service-endpoints: %w", err)
		}
	}
	return nil
}

// measureScalePoint runs one point in its own child process: in fresh
// namespaces on this host, or in a fresh boot of the VM for ipvs with --vm.
func measureScalePoint(ctx context.Context, f *benchScaleFlags, p bench.ScalePoint, progress io.Writer) (*bench.Result, error) {
	spec := bench.Spec{
		Mode: p.Mode, Services: p.Services, Endpoints: p.Endpoints,
		PartialRuns: f.partialRuns, EndpointRuns: f.endpointRuns,
		NoServiceChange: p.Series == bench.SeriesEndpoints,
		NoBaseline:      true,
	}
	if f.vm && p.Mode == "ipvs" {
		if p.Series == bench.SeriesEndpoints {
			return nil, errors.New("the endpoints series is not measured in the VM")
		}
		results, err := bench.RunInVM(ctx, bench.VMOptions{
			Modes: []string{p.Mode}, Services: []int{p.Services}, Endpoints: p.Endpoints,
			Connects: 1, PartialRuns: f.partialRuns, EndpointRuns: f.endpointRuns, NoBaseline: spec.NoBaseline, Progress: progress,
		})
		if err != nil {
			return nil, err
		}
		if len(results) != 1 {
			return nil, fmt.Errorf("VM returned %d rows, want 1", len(results))
		}
		return &results[0], nil
	}
	return bench.Run(ctx, spec, bench.RunOptions{Progress: progress})
}

// writeScaleReport writes scale.json, table.md and the charts of every row.
func writeScaleReport(dir string, rows []bench.ScaleRow) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	summary := struct {
		Rows      []bench.ScaleRow `json:"rows"`
		Exponents []bench.Exponent `json:"exponents"`
	}{rows, bench.Exponents(rows)}
	b, err := json.MarshalIndent(summary, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scale.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var table strings.Builder
	if err := bench.WriteScaleTable(&table, rows); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "table.md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	where := fmt.Sprintf("Linux %s, %d CPUs; %s", kernelRelease(), runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	for _, c := range bench.ServiceCosts {
		title := fmt.Sprintf("kproxy bench scale: %s against Services; %s", c.Title, where)
		if err := writeFile(filepath.Join(dir, c.Name+".svg"), func(w *os.File) error { return bench.WriteScaleSVG(w, rows, c, title) }); err != nil {
			return err
		}
	}
	title := "kproxy bench scale: one Service, its endpoints over slices of 100; " + where
	return writeFile(filepath.Join(dir, "endpoints.svg"), func(w *os.File) error { return bench.WriteEndpointsSVG(w, rows, title) })
}

func writeFile(path string, write func(*os.File) error) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(file); err != nil {
		file.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return file.Close()
}
