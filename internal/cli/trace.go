package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kproxy.dev/kproxy/internal/conntrack"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/trace"
)

func init() { registerCommand(newTraceCommand) }

type traceFlags struct {
	mode, from, to, inInterface, adminAddress string
	fromFiles, nodeIPs                        []string
	json, live                                bool
	timeout                                   time.Duration
}

func newTraceCommand() *cobra.Command {
	f := &traceFlags{}
	cmd := &cobra.Command{
		Use:   "trace --from SRC --to DST:PORT[/tcp|udp|sctp]",
		Short: "Show which endpoint a packet to a Service gets, and why, from the rules in the kernel",
		Long: `Follows one packet (the first of a new connection) through the rules the node
holds: iptables chains, nftables chains and maps, the IPVS table or the userspace
relays. Prints each rule or element that matched (with its line in the dump or its
handle), the candidate endpoints with each one's probability, session affinity,
masquerading and the verdict.

Without --in-interface the packet is generated on the node (OUTPUT path); with it,
the packet arrives on that interface (PREROUTING path), as from a pod or a client.

--from-file reads a saved iptables-save, nft list ruleset or ipvsadm -Ln text from
any node (kube-proxy's too) instead of this node's kernel; its kind is detected.
Offline, --node-ip says which addresses are the node's (for NodePorts).
--live adds where recent connections to the destination really went, counted from
the conntrack table.`,
		Example: "  kproxy trace --from 10.244.1.5 --to 10.96.0.10:80 --in-interface cni0\n" +
			"  kproxy trace --from 192.168.1.20 --to 192.168.1.10:30080 --in-interface eth0 --live\n" +
			"  kproxy trace --from-file iptables-save.txt --node-ip 192.168.1.10 --from 10.0.0.1 --to 10.96.0.1:443/tcp --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrace(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mode, "mode", "", "proxy mode: iptables, nftables, ipvs, userspace, ebpf (default: detected)")
	fl.StringVar(&f.from, "from", "", "source address of the packet")
	fl.StringVar(&f.to, "to", "", "destination ADDRESS:PORT[/tcp|udp|sctp] (tcp when left out)")
	fl.StringVar(&f.inInterface, "in-interface", "", "interface the packet arrives on; empty: sent by the node itself")
	fl.StringSliceVar(&f.fromFiles, "from-file", nil, "read the rules from this dump instead of the kernel (- for stdin); "+
		"for ipvs, repeat it for the ipvsadm -Ln, iptables-save and ipset save texts")
	fl.StringSliceVar(&f.nodeIPs, "node-ip", nil, "with --from-file: the node's addresses (NodePorts, fib/addrtype LOCAL)")
	fl.BoolVar(&f.json, "json", false, "print the trace as JSON (fields: docs/trace.md)")
	fl.BoolVar(&f.live, "live", false, "count where recent connections to the destination went (conntrack)")
	fl.StringVar(&f.adminAddress, "admin-address", "127.0.0.1:10259", "the daemon's admin endpoint, for --mode userspace")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the kernel or the daemon")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runTrace(ctx context.Context, w io.Writer, f *traceFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	p, err := tracePacket(f)
	if err != nil {
		return err
	}
	r, err := traceRules(ctx, f, p)
	if err != nil {
		return err
	}
	if f.live {
		if r.Live, err = liveCounts(p); err != nil {
			return err
		}
	}
	if f.json {
		return trace.WriteJSON(w, r)
	}
	return trace.WriteText(w, r)
}

func tracePacket(f *traceFlags) (trace.Packet, error) {
	src, err := netip.ParseAddr(f.from)
	if err != nil {
		return trace.Packet{}, fmt.Errorf("--from %q: not an IP address", f.from)
	}
	dst, port, proto, err := trace.ParseDestination(f.to)
	if err != nil {
		return trace.Packet{}, err
	}
	if src.Is4() != dst.Is4() {
		return trace.Packet{}, fmt.Errorf("--from %s and --to %s are of different IP families", src, dst)
	}
	return trace.Packet{Src: src.Unmap(), Dst: dst, DPort: port, Proto: proto, InInterface: f.inInterface}, nil
}

func traceRules(ctx context.Context, f *traceFlags, p trace.Packet) (*trace.Result, error) {
	if len(f.fromFiles) > 0 {
		return traceFiles(f, p)
	}
	switch f.mode {
	case "userspace":
		vss, err := fetchFromDaemon(ctx, f.adminAddress)
		if err != nil {
			return nil, err
		}
		r := trace.TraceVirtualServices("userspace", vss, p, trace.Options{})
		r.Source = "kproxy daemon at " + f.adminAddress
		return r, nil
	case "iptables", "nftables", "ipvs", "":
		return traceKernel(ctx, f.mode, p)
	}
	if t, ok := trace.LookupTracer(f.mode); ok {
		o, err := nodeOptions()
		if err != nil {
			return nil, err
		}
		return t(ctx, p, o)
	}
	if f.mode == "ebpf" {
		return traceEBPF(ctx, p)
	}
	return nil, fmt.Errorf("--mode %q: want iptables, nftables, ipvs, userspace or ebpf", f.mode)
}

func traceFiles(f *traceFlags, p trace.Packet) (*trace.Result, error) {
	var texts []string
	for _, name := range f.fromFiles {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(io.LimitReader(os.Stdin, 512<<20))
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("--from-file: %w", err)
		}
		texts = append(texts, string(data))
	}
	o := trace.Options{}
	for _, s := range f.nodeIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--node-ip %q: not an IP address", s)
		}
		o.LocalAddrs = append(o.LocalAddrs, a)
	}
	r, err := trace.TraceDumps(f.mode, texts, p, o)
	if err != nil {
		return nil, fmt.Errorf("--from-file %s: %w", strings.Join(f.fromFiles, ","), err)
	}
	r.Source = strings.Join(f.fromFiles, ", ")
	return r, nil
}

// liveCounts groups the conntrack entries for the traced destination by endpoint.
func liveCounts(p trace.Packet) (*trace.LiveInfo, error) {
	protos := map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}
	flows, err := conntrack.ListNAT(netip.AddrPortFrom(p.Dst, p.DPort), protos[p.Proto])
	if err != nil {
		return nil, fmt.Errorf("--live: %w", err)
	}
	counts := map[string]int{}
	for _, fl := range flows {
		counts[fl.Endpoint.String()]++
	}
	li := &trace.LiveInfo{Total: len(flows), Endpoints: []trace.LiveTarget{}}
	for ep, n := range counts {
		li.Endpoints = append(li.Endpoints, trace.LiveTarget{Endpoint: ep, Count: n})
	}
	sort.Slice(li.Endpoints, func(i, j int) bool {
		a, b := li.Endpoints[i], li.Endpoints[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Endpoint < b.Endpoint)
	})
	return li, nil
}

// traceEBPF reads the ebpf mode's pinned maps: a destination they hold is
// translated at connect()/sendmsg() for the node's processes and pods (socket LB,
// no packet rule at all); anything else (NodePorts, external IPs, load-balancer
// IPs, traffic arriving from outside) goes through the mode's nftables rules,
// traced as nftables mode.
func traceEBPF(ctx context.Context, p trace.Packet) (*trace.Result, error) {
	list, ok := dataplane.KernelLister("ebpf")
	if !ok {
		return nil, fmt.Errorf("--mode ebpf: this build has no ebpf mode (it needs Linux)")
	}
	vss, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("--mode ebpf: reading the pinned maps: %w", err)
	}
	r := trace.TraceVirtualServices("ebpf", vss, p, trace.Options{})
	if p.InInterface == "" && r.Verdict.Kind != "accept" {
		r.Source = "ebpf socket-LB maps (translated at connect/sendmsg, no DNAT)"
		return r, nil
	}
	nr, err := traceKernel(ctx, "nftables", p)
	if err != nil {
		return nil, err
	}
	nr.Notes = append(nr.Notes, "ebpf mode: socket LB translates only connections made on the node (its processes and pods); this packet is traced through the mode's nftables rules")
	return nr, nil
}
