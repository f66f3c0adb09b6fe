package bench

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// FormatSeconds prints a duration in the unit that keeps 2-3 significant digits;
// nil (not measured) prints as "n/a".
func FormatSeconds(v *float64) string {
	if v == nil {
		return "n/a"
	}
	s := *v
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.01:
		return fmt.Sprintf("%.0f ms", s*1e3)
	case s >= 0.001:
		return fmt.Sprintf("%.1f ms", s*1e3)
	default:
		return fmt.Sprintf("%.0f µs", s*1e6)
	}
}

// FormatCount prints an integer with thousands separators: 150,000.
func FormatCount(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + FormatCount(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// WriteSyncTable prints `kproxy bench sync` results, one row per size.
func WriteSyncTable(out io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tservices\tendpoints\trules\trender\tfull sync\tpartial sync\tbaseline apply\tfull/baseline\tcpu kproxy\tcpu tools\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Mode, FormatCount(r.Services), r.Endpoints, FormatCount(r.Rules),
			FormatSeconds(r.RenderSeconds), FormatSeconds(&r.FullSyncSeconds),
			FormatSeconds(&r.PartialSyncSeconds), FormatSeconds(r.BaselineApplySeconds),
			ratio(r.FullSyncSeconds, r.BaselineApplySeconds),
			FormatSeconds(&r.CPUKproxySeconds), FormatSeconds(&r.CPUToolsSeconds))
	}
	return tw.Flush()
}

func ratio(a float64, b *float64) string {
	if b == nil || *b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a / *b)
}
