package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
)

func init() { registerCommand(newListCommand) }

type listFlags struct {
	stats, rate, json, kernel bool
	adminAddress, mode        string
	timeout                   time.Duration
}

func newListCommand() *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show virtual services and their real servers, like ipvsadm -Ln",
		Long: `Prints each virtual service (protocol, address, scheduler, flags, persistence)
and its real servers (forwarding, weight, active and inactive connections) in the
layout of ipvsadm -Ln. --stats shows traffic counters and --rate their rates
instead, as ipvsadm does; --json prints the raw list for scripts.

By default the running daemon is asked through its local admin endpoint
(GET http://ADMIN-ADDRESS/list). With --kernel, or --mode ipvs, the kernel's IPVS
table is read directly, with no daemon needed.`,
		Example: "  kproxy list\n  kproxy list --stats\n  kproxy list --kernel --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runList(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.stats, "stats", false, "show connection, packet and byte counters")
	fl.BoolVar(&f.rate, "rate", false, "show connection, packet and byte rates")
	fl.BoolVar(&f.json, "json", false, "print the virtual services as JSON")
	fl.BoolVar(&f.kernel, "kernel", false, "read the kernel's IPVS table instead of asking the daemon")
	fl.StringVar(&f.mode, "mode", "", "proxy mode; ipvs implies --kernel")
	fl.StringVar(&f.adminAddress, "admin-address", config.DefaultMetricsBindAddress, "the daemon's metrics address (host:port), which serves GET /list")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the daemon or the kernel")
	cmd.MarkFlagsMutuallyExclusive("stats", "rate")
	return cmd
}

func runList(ctx context.Context, w io.Writer, f *listFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	vss, title, err := fetchList(ctx, f)
	if err != nil {
		return err
	}
	if f.json {
		if vss == nil {
			vss = []dataplane.VirtualService{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(vss)
	}
	return formatList(w, vss, listFormat{Stats: f.stats, Rate: f.rate, Title: title})
}

// fetchList gets the table from the kernel or the daemon, with the title line that
// says which.
func fetchList(ctx context.Context, f *listFlags) ([]dataplane.VirtualService, string, error) {
	if f.kernel || f.mode == "ipvs" {
		mode := f.mode
		if mode == "" {
			mode = "ipvs"
		}
		list, ok := dataplane.KernelLister(mode)
		if !ok {
			return nil, "", fmt.Errorf("listing the kernel table is not available for mode %q in this build; "+
				"ask the running daemon instead (kproxy list without --kernel)", mode)
		}
		vss, err := list(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("reading the kernel's %s table: %w", mode, err)
		}
		return vss, "IP Virtual Server (kproxy, read from the kernel)", nil
	}
	vss, err := fetchFromDaemon(ctx, f.adminAddress)
	if err != nil {
		return nil, "", err
	}
	return vss, fmt.Sprintf("IP Virtual Server (kproxy daemon at %s)", f.adminAddress), nil
}

func fetchFromDaemon(ctx context.Context, addr string) ([]dataplane.VirtualService, error) {
	url := "http://" + addr + "/list"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("--admin-address %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the kproxy daemon at %s (is it running, with --admin-bind-address %s? "+
			"in ipvs mode, --kernel reads the kernel without it): %w", url, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, firstLine(body))
	}
	var vss []dataplane.VirtualService
	if err := json.Unmarshal(body, &vss); err != nil {
		return nil, fmt.Errorf("%s: not a list of virtual services: %w", url, err)
	}
	return vss, nil
}

func firstLine(b []byte) string {
	const max = 200
	for i, c := range b {
		if c == '\n' || i == max {
			return string(b[:i])
		}
	}
	if len(b) == 0 {
		return "(empty body)"
	}
	return string(b)
}
