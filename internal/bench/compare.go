package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// PreferredOrder is the column order of the comparison: no kernel rules first,
// then the O(n) chain walk, then the two O(1) lookups.
var PreferredOrder = []string{"userspace", "iptables", "nftables", "ipvs", "ebpf"}

// OrderModes puts modes in PreferredOrder, unknown ones after them in the given order.
func OrderModes(modes []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range PreferredOrder {
		for _, m := range modes {
			if m == p && !seen[m] {
				out = append(out, m)
				seen[m] = true
			}
		}
	}
	for _, m := range modes {
		if !seen[m] {
			out = append(out, m)
			seen[m] = true
		}
	}
	return out
}

// Comparison is everything `kproxy bench compare` measured.
type Comparison struct {
	Results []Result
	Skipped []Skipped
}

// Column names the table column and chart line of a result: the mode, marked
// when measured elsewhere than on this host ("ipvs (vm)").
func (r *Result) Column() string {
	if r.Where != "" {
		return r.Mode + " (" + r.Where + ")"
	}
	return r.Mode
}

// Modes lists the columns: modes measured on this host in PreferredOrder, then
// those measured in the VM, in the same order.
func (c *Comparison) Modes() []string {
	var host, vm []string
	for _, r := range c.Results {
		if r.Where == "" {
			host = append(host, r.Mode)
		} else {
			vm = append(vm, r.Mode)
		}
	}
	out := OrderModes(host)
	for _, m := range OrderModes(vm) {
		for _, r := range c.Results {
			if r.Mode == m && r.Where != "" {
				out = append(out, r.Column())
				break
			}
		}
	}
	return out
}

// Sizes lists the measured numbers of Services, ascending, without repeats.
func (c *Comparison) Sizes() []int {
	seen := map[int]bool{}
	var out []int
	for _, r := range c.Results {
		if !seen[r.Services] {
			seen[r.Services] = true
			out = append(out, r.Services)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (c *Comparison) find(column string, n int) *Result {
	for i := range c.Results {
		if c.Results[i].Column() == column && c.Results[i].Services == n {
			return &c.Results[i]
		}
	}
	return nil
}

// metricRow is one row of the comparison table.
type metricRow struct {
	label string
	cell  func(r *Result) string
	// quoted gives the commonly quoted figure for n Services ("" for none).
	quoted func(n int) string
}

func seconds(f func(r *Result) *float64) func(r *Result) string {
	return func(r *Result) string { return FormatSeconds(f(r)) }
}

var compareRows = []metricRow{
	{"cold full sync", seconds(func(r *Result) *float64 { return &r.FullSyncSeconds }), quotedSync},
	{"one-Service change", seconds(func(r *Result) *float64 { return &r.PartialSyncSeconds }),
		func(int) string { return "iptables rewrites chains; IPVS incremental" }},
	{"rules / objects", func(r *Result) string { return FormatCount(r.Rules) }, nil},
	{"connect p50, first Service", seconds(func(r *Result) *float64 { return r.ConnectFirstP50 }), nil},
	{"connect p50, last Service", seconds(func(r *Result) *float64 { return r.ConnectLastP50 }),
		func(int) string { return "iptables O(n), IPVS O(1)" }},
	{"connect p99, first Service", seconds(func(r *Result) *float64 { return r.ConnectFirstP99 }), nil},
	{"connect p99, last Service", seconds(func(r *Result) *float64 { return r.ConnectLastP99 }), nil},
	{"to backend's 1st byte p50, first", seconds(func(r *Result) *float64 { return r.RoundTripFirstP50 }), nil},
	{"to backend's 1st byte p50, last", seconds(func(r *Result) *float64 { return r.RoundTripLastP50 }), nil},
	{"to backend's 1st byte p99, last", seconds(func(r *Result) *float64 { return r.RoundTripLastP99 }), nil},
	{"CPU kproxy (syncs)", seconds(func(r *Result) *float64 { return &r.CPUKproxySeconds }), nil},
	{"CPU apply tools (syncs)", seconds(func(r *Result) *float64 { return &r.CPUToolsSeconds }),
		func(int) string { return "higher for iptables at scale" }},
}

// quotedSync is the folklore figure for syncing n Services: iptables vs IPVS.
func quotedSync(n int) string {
	switch n {
	case 1000:
		return "iptables ~200 ms, IPVS ~20 ms"
	case 10000:
		return "iptables ~5 s, IPVS ~100 ms"
	}
	return ""
}

// WriteCompareTable prints one block per number of Services: metric rows, one
// column per mode, and the commonly quoted figures in the last column.
func WriteCompareTable(out io.Writer, c *Comparison) error {
	modes := c.Modes()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for i, n := range c.Sizes() {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		header := []string{fmt.Sprintf("%s Services x %d endpoints", FormatCount(n), c.endpoints(n))}
		header = append(header, modes...)
		header = append(header, "commonly quoted")
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, row := range compareRows {
			cells := []string{row.label}
			for _, m := range modes {
				if r := c.find(m, n); r != nil {
					cells = append(cells, row.cell(r))
				} else {
					cells = append(cells, "-")
				}
			}
			q := ""
			if row.quoted != nil {
				q = row.quoted(n)
			}
			cells = append(cells, q)
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeNotes(out, c)
}

func (c *Comparison) endpoints(n int) int {
	for _, r := range c.Results {
		if r.Services == n {
			return r.Endpoints
		}
	}
	return 0
}

func writeNotes(out io.Writer, c *Comparison) error {
	vmNoted := false
	for _, r := range c.Results {
		if r.ConnectError != "" {
			if _, err := fmt.Fprintf(out, "note: %s at %s Services: lookup cost not measured: %s\n", r.Mode, FormatCount(r.Services), r.ConnectError); err != nil {
				return err
			}
		}
		if r.Where == "vm" && !vmNoted {
			vmNoted = true
			if _, err := fmt.Fprintln(out, "note: columns marked (vm) were measured inside the qemu test VM (software emulation, no KVM; the host kernel lacks IPVS): compare them with each other, not with the host's columns"); err != nil {
				return err
			}
		}
	}
	for _, s := range c.Skipped {
		if _, err := fmt.Fprintf(out, "skipped %s: %s\n", s.Mode, s.Reason); err != nil {
			return err
		}
	}
	return nil
}
