package cli

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
)

// listFormat selects the columns of `kproxy list`, as ipvsadm's -L options do.
type listFormat struct {
	// Stats prints Conns/InPkts/OutPkts/InBytes/OutBytes instead of the scheduler
	// columns (ipvsadm -Ln --stats); Rate prints CPS/InPPS/OutPPS/InBPS/OutBPS.
	Stats, Rate bool
	// Title is the first header line, where ipvsadm names the IPVS version.
	Title string
}

// formatList writes services the way `ipvsadm -Ln` lays them out: same headers,
// column widths and ordering (services by protocol, address, port; real servers by
// address), so that scripts written for ipvsadm keep working.
func formatList(w io.Writer, vss []dataplane.VirtualService, f listFormat) error {
	var b strings.Builder
	b.WriteString(f.Title + "\n")
	switch {
	case f.Stats:
		fmt.Fprintf(&b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f.Rate:
		fmt.Fprintf(&b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	default:
		b.WriteString("Prot LocalAddress:Port Scheduler Flags\n" +
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
	for _, vs := range sortedServices(vss) {
		writeService(&b, vs, f)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeService(b *strings.Builder, vs dataplane.VirtualService, f listFormat) {
	name := vs.Protocol + "  " + vs.Address
	st := statsOrZero(vs.Stats)
	switch {
	case f.Stats:
		fmt.Fprintf(b, "%-33s%s\n", name, largeNums(st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes))
	case f.Rate:
		fmt.Fprintf(b, "%-33s%s\n", name, largeNums(rate(st.CPS), rate(st.InPPS), rate(st.OutPPS), rate(st.InBPS), rate(st.OutBPS)))
	default:
		fmt.Fprintf(b, "%s %s", name, vs.Scheduler)
		if len(vs.Flags) > 0 {
			fmt.Fprintf(b, " (%s)", strings.Join(vs.Flags, ","))
		}
		if vs.PersistentSeconds > 0 {
			fmt.Fprintf(b, " persistent %d", vs.PersistentSeconds)
		}
		b.WriteString("\n")
	}
	for _, rs := range sortedServers(vs.RealServers) {
		st := statsOrZero(rs.Stats)
		switch {
		case f.Stats:
			fmt.Fprintf(b, "  -> %-28s%s\n", rs.Address, largeNums(st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes))
		case f.Rate:
			fmt.Fprintf(b, "  -> %-28s %8d %8d %8d%s\n", rs.Address, rate(st.CPS), rate(st.InPPS), rate(st.OutPPS),
				largeNums(rate(st.InBPS), rate(st.OutBPS)))
		default:
			fmt.Fprintf(b, "  -> %-28s %-7s %-6d %-10d %-10d\n", rs.Address, rs.Forward, rs.Weight, rs.ActiveConn, rs.InActConn)
		}
	}
}

// largeNums prints counters like ipvsadm's print_largenum: nine columns each, with
// K, M, G or T once a number no longer fits.
func largeNums(ns ...uint64) string {
	var b strings.Builder
	for _, n := range ns {
		switch {
		case n < 1e8:
			fmt.Fprintf(&b, "%9d", n)
		case n < 1e9:
			fmt.Fprintf(&b, "%8dK", n/1e3)
		case n < 1e11:
			fmt.Fprintf(&b, "%8dM", n/1e6)
		case n < 1e14:
			fmt.Fprintf(&b, "%8dG", n/1e9)
		default:
			fmt.Fprintf(&b, "%8dT", n/1e12)
		}
	}
	return b.String()
}

// rate rounds a per-second rate for display; the kernel reports integers too.
func rate(f float64) uint64 {
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	return uint64(math.Round(f))
}

func statsOrZero(s *dataplane.Stats) dataplane.Stats {
	if s == nil {
		return dataplane.Stats{}
	}
	return *s
}

// protoOrder is ipvsadm's order: by IP protocol number.
func protoOrder(p string) int {
	switch strings.ToUpper(p) {
	case "TCP":
		return 6
	case "UDP":
		return 17
	case "SCTP":
		return 132
	}
	return 256
}

func compareAddress(a, b string) int {
	pa, ea := netip.ParseAddrPort(a)
	pb, eb := netip.ParseAddrPort(b)
	if ea != nil || eb != nil {
		return strings.Compare(a, b)
	}
	return pa.Compare(pb)
}

func sortedServices(vss []dataplane.VirtualService) []dataplane.VirtualService {
	out := slices.Clone(vss)
	slices.SortStableFunc(out, func(a, b dataplane.VirtualService) int {
		if c := protoOrder(a.Protocol) - protoOrder(b.Protocol); c != 0 {
			return c
		}
		return compareAddress(a.Address, b.Address)
	})
	return out
}

func sortedServers(rss []dataplane.RealServer) []dataplane.RealServer {
	out := slices.Clone(rss)
	slices.SortStableFunc(out, func(a, b dataplane.RealServer) int { return compareAddress(a.Address, b.Address) })
	return out
}
