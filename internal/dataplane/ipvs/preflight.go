//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
)

// missing is one thing the kernel or the node lacks, with the module that provides it.
type missing struct {
	Module string // "" when no module fixes it (a tool to install)
	What   string
}

// preflightError names everything missing and the commands that fix it.
type preflightError struct{ Missing []missing }

func (e *preflightError) Error() string {
	var b strings.Builder
	b.WriteString("ipvs mode cannot start: the kernel or the node lacks what it needs:\n")
	var mods []string
	seen := map[string]bool{}
	for _, m := range e.Missing {
		fmt.Fprintf(&b, "  - %s\n", m.What)
		if m.Module != "" && !seen[m.Module] {
			seen[m.Module] = true
			mods = append(mods, m.Module)
		}
	}
	if len(mods) > 0 {
		b.WriteString("load the missing kernel modules (a kernel built with CONFIG_IP_VS, CONFIG_DUMMY and CONFIG_IP_SET has them), then start again:\n")
		for _, m := range mods {
			fmt.Fprintf(&b, "  modprobe %s\n", m)
		}
	}
	b.WriteString("or choose another mode: --proxy-mode iptables, nftables or userspace")
	return b.String()
}

// probeVS is a documentation address (TEST-NET-2) used to try a scheduler, as
// kube-proxy does: the kernel loads ip_vs_<name> on demand or refuses.
var probeVS = &virtualServer{Key: vsKey{Addr: netip.MustParseAddr("198.51.100.0"), Port: 20000, Proto: protoTCP}}

// preflight loads what it can and checks IPVS, the schedulers, dummy links, ipset
// and the iptables tools. It returns an IPVS handle when everything is there.
func preflight(ctx context.Context, schedulers []string) (*mobyipvs.Handle, error) {
	modules := []string{"ip_vs", "nf_conntrack", "dummy", "ip_set"}
	for _, s := range schedulers {
		modules = append(modules, "ip_vs_"+s)
	}
	tryModprobe(ctx, modules)

	var miss []missing
	var h *mobyipvs.Handle
	if _, err := netlink.GenlFamilyGet("IPVS"); err != nil {
		miss = append(miss, missing{"ip_vs", fmt.Sprintf("IPVS (generic netlink family \"IPVS\" not found: %v)", err)})
		for _, s := range schedulers {
			miss = append(miss, missing{"ip_vs_" + s, fmt.Sprintf("IPVS scheduler %q", s)})
		}
	} else {
		var err error
		h, err = mobyipvs.New("")
		if err != nil {
			miss = append(miss, missing{"ip_vs", fmt.Sprintf("IPVS netlink socket: %v", err)})
		} else {
			miss = append(miss, probeSchedulers(h, schedulers)...)
		}
	}
	_, lerr := netlink.LinkByName(DummyLink)
	existed := lerr == nil
	if err := (netlinkLinks{}).EnsureDummy(DummyLink); err != nil {
		miss = append(miss, missing{"dummy", fmt.Sprintf("dummy network devices (creating %s: %v)", DummyLink, err)})
	}
	miss = append(miss, checkTools(ctx)...)
	if len(miss) > 0 {
		if h != nil {
			h.Close()
		}
		if !existed {
			_ = (netlinkLinks{}).DeleteLink(DummyLink) // leave nothing behind a refusal
		}
		return nil, &preflightError{Missing: miss}
	}
	return h, nil
}

func probeSchedulers(h *mobyipvs.Handle, schedulers []string) []missing {
	var miss []missing
	for _, s := range schedulers {
		vs := *probeVS
		vs.Scheduler = s
		_ = h.DelService(toService(&vs)) // left over from a crash
		if err := h.NewService(toService(&vs)); err != nil {
			miss = append(miss, missing{"ip_vs_" + s, fmt.Sprintf("IPVS scheduler %q (kernel refused it: %v)", s, err)})
			continue
		}
		_ = h.DelService(toService(&vs))
	}
	return miss
}

// checkTools checks the ipset tool and kernel support, and the iptables tools.
func checkTools(ctx context.Context) []missing {
	var miss []missing
	if _, err := exec.LookPath("ipset"); err != nil {
		miss = append(miss, missing{"", "the ipset tool (install the ipset package)"})
	} else if _, err := run(ctx, "", "ipset", "list", "-n"); err != nil {
		miss = append(miss, missing{"ip_set", fmt.Sprintf("ipset kernel support (%v)", err)})
	}
	for _, t := range []string{"iptables", "iptables-restore"} {
		if _, err := exec.LookPath(t); err != nil {
			miss = append(miss, missing{"", fmt.Sprintf("the %s tool (install the iptables package)", t)})
		}
	}
	return miss
}

// tryModprobe loads modules where modprobe exists; failures are found by the checks.
func tryModprobe(ctx context.Context, modules []string) {
	if _, err := exec.LookPath("modprobe"); err != nil {
		return
	}
	sort.Strings(modules)
	for _, m := range modules {
		_, _ = run(ctx, "", "modprobe", m)
	}
}

// ipvsAvailable reports whether the kernel has IPVS, without loading anything.
func ipvsAvailable() bool {
	_, err := netlink.GenlFamilyGet("IPVS")
	return err == nil
}

// sysctls IPVS mode needs: conntrack for IPVS connections (so that iptables can
// masquerade them), dropping connections to deleted real servers, and forwarding.
var sysctls = [][2]string{
	{"net/ipv4/vs/conntrack", "1"},
	{"net/ipv4/vs/expire_nodest_conn", "1"},
	{"net/ipv4/vs/expire_quiescent_template", "1"},
	{"net/ipv4/ip_forward", "1"},
}

var strictARPSysctls = [][2]string{
	{"net/ipv4/conf/all/arp_ignore", "1"},
	{"net/ipv4/conf/all/arp_announce", "2"},
}

// setSysctls writes the values that differ.
func setSysctls(s Sysctl, strictARP bool) error {
	list := sysctls
	if strictARP {
		list = append(append([][2]string{}, sysctls...), strictARPSysctls...)
	}
	for _, kv := range list {
		if cur, err := s.Get(kv[0]); err == nil && cur == kv[1] {
			continue
		}
		if err := s.Set(kv[0], kv[1]); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(kv[0], "/", "."), kv[1], err)
		}
	}
	return nil
}
