//go:build linux

package cli

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/nftables"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/dataplane/iptables"
	"kproxy.dev/kproxy/internal/nodeaddr"
	"kproxy.dev/kproxy/internal/trace"
)

// traceKernel reads the rules of mode ("" detects it) from this network namespace.
func traceKernel(ctx context.Context, mode string, p trace.Packet) (*trace.Result, error) {
	o, err := nodeOptions()
	if err != nil {
		return nil, err
	}
	if mode == "" {
		if mode, err = detectKernelMode(ctx); err != nil {
			return nil, err
		}
	}
	switch mode {
	case "iptables":
		b, err := iptables.DetectBackend(ctx)
		if err != nil {
			return nil, err
		}
		dump, err := iptables.ExecRunner{Backend: b}.Save(ctx, "")
		if err != nil {
			return nil, err
		}
		r, err := trace.TraceIptables(string(dump), p, o)
		if err == nil {
			r.Source = "kernel (iptables-" + string(b) + "-save)"
		}
		return r, err
	case "nftables":
		return traceNftKernel(ctx, p, o)
	}
	list, ok := dataplane.KernelLister("ipvs")
	if !ok {
		return nil, fmt.Errorf("reading the kernel's IPVS table is not available in this build")
	}
	vss, err := list(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the kernel's IPVS table: %w", err)
	}
	rules, sets := ipvsCompanions(ctx)
	o.IPSets = sets
	r, err := trace.TraceIPVS(vss, rules, p, o)
	if err != nil {
		return nil, err
	}
	r.Source = "kernel (IPVS over netlink, iptables-save, ipset save)"
	return r, nil
}

// ipvsCompanions reads the iptables rules and ipsets ipvs mode keeps beside the
// IPVS table; either may be missing, and the trace then covers IPVS alone.
func ipvsCompanions(ctx context.Context) (string, map[string]*trace.IPSet) {
	var rules string
	if b, err := iptables.DetectBackend(ctx); err == nil {
		if out, err := (iptables.ExecRunner{Backend: b}).Save(ctx, ""); err == nil {
			rules = string(out)
		}
	}
	out, err := exec.CommandContext(ctx, "ipset", "save").Output()
	if err != nil {
		return rules, nil
	}
	sets, err := trace.ParseIpset(string(out))
	if err != nil {
		return rules, nil
	}
	return rules, sets
}

// nftSourceEnv forces how nftables rules are read: "netlink" or "text" (nft -a list
// ruleset). By default netlink is used, and the nft tool only when it is installed
// and netlink left rules undecoded.
const nftSourceEnv = "KPROXY_TRACE_NFT"

func traceNftKernel(ctx context.Context, p trace.Packet, o trace.Options) (*trace.Result, error) {
	force := os.Getenv(nftSourceEnv)
	if force != "text" {
		rs, err := readNftNetlink()
		_, lookErr := exec.LookPath("nft")
		switch {
		case err == nil && (rs.Undecoded == 0 || force == "netlink" || lookErr != nil):
			r := trace.TraceNftRuleset(rs, p, o)
			r.Source = "kernel (nftables over netlink)"
			return r, nil
		case err != nil && (force == "netlink" || lookErr != nil):
			return nil, fmt.Errorf("reading nftables over netlink: %w", err)
		}
	}
	dump, err := nftRuleset(ctx)
	if err != nil {
		return nil, err
	}
	r, err := trace.TraceNftables(dump, p, o)
	if err == nil {
		r.Source = "kernel (nft list ruleset)"
	}
	return r, err
}

// readNftNetlink reads every ip, ip6 and inet table of this network namespace.
func readNftNetlink() (*trace.NftRuleset, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("listing chains: %w", err)
	}
	var out []trace.NetlinkTable
	for _, t := range tables {
		switch t.Family {
		case nftables.TableFamilyIPv4, nftables.TableFamilyIPv6, nftables.TableFamilyINet:
		default:
			continue
		}
		nt := trace.NetlinkTable{Table: t, Rules: map[string][]*nftables.Rule{}, Elements: map[string][]nftables.SetElement{}}
		if nt.Sets, err = c.GetSets(t); err != nil {
			return nil, fmt.Errorf("table %s: sets: %w", t.Name, err)
		}
		for _, s := range nt.Sets {
			if nt.Elements[s.Name], err = c.GetSetElements(s); err != nil {
				return nil, fmt.Errorf("table %s: set %s: %w", t.Name, s.Name, err)
			}
		}
		for _, ch := range chains {
			if ch.Table.Name != t.Name || ch.Table.Family != t.Family {
				continue
			}
			nt.Chains = append(nt.Chains, ch)
			if nt.Rules[ch.Name], err = c.GetRules(t, ch); err != nil {
				return nil, fmt.Errorf("table %s: chain %s: %w", t.Name, ch.Name, err)
			}
		}
		out = append(out, nt)
	}
	return trace.DecodeNetlink(out), nil
}

// nftRuleset lists the ruleset with the nft tool.
func nftRuleset(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return "", fmt.Errorf("--mode nftables needs the nft tool to list the ruleset (or give --from-file): %w", err)
	}
	out, err := exec.CommandContext(ctx, "nft", "-a", "list", "ruleset").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("nft list ruleset: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("nft list ruleset: %w", err)
	}
	return string(out), nil
}

// detectKernelMode picks the mode whose rules are in the kernel: a kproxy or
// kube-proxy nftables table, else Service chains in iptables, else IPVS.
func detectKernelMode(ctx context.Context) (string, error) {
	if out, err := exec.CommandContext(ctx, "nft", "list", "tables").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if l == "table ip kproxy" || l == "table ip kube-proxy" {
				return "nftables", nil
			}
		}
	}
	if b, err := iptables.DetectBackend(ctx); err == nil {
		if dump, err := (iptables.ExecRunner{Backend: b}).Save(ctx, "nat"); err == nil &&
			strings.Contains(string(dump), ":KUBE-SERVICES") {
			return "iptables", nil
		}
	}
	if _, ok := dataplane.KernelLister("ipvs"); ok {
		return "ipvs", nil
	}
	return "", fmt.Errorf("found no Service rules in this network namespace; give --mode")
}

// nodeOptions reads what the evaluation needs from this node: its addresses and
// the xt_recent lists (ClientIP affinity in iptables mode).
func nodeOptions() (trace.Options, error) {
	addrs, err := nodeaddr.LocalAddresses()
	if err != nil {
		return trace.Options{}, fmt.Errorf("reading the node's addresses: %w", err)
	}
	return trace.Options{LocalAddrs: addrs, LocalKnown: true, Recent: recentLists()}, nil
}

// recentLists reads /proc/net/xt_recent/*; each line starts "src=ADDR ttl: ...".
func recentLists() map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	files, _ := filepath.Glob("/proc/thread-self/net/xt_recent/*")
	for _, path := range files {
		fh, err := os.Open(path)
		if err != nil {
			continue
		}
		var list []netip.Addr
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 0 {
				if a, err := netip.ParseAddr(strings.TrimPrefix(f[0], "src=")); err == nil {
					list = append(list, a.Unmap())
				}
			}
		}
		fh.Close()
		out[filepath.Base(path)] = list
	}
	return out
}
