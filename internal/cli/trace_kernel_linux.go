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

// nftRuleset lists the ruleset with the nft tool: decoding netlink rule
// expressions back into rules is what nft itself is for.
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
