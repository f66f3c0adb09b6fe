//go:build linux

package ipvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"kproxy.dev/kproxy/internal/localroute"
)

// netlinkLinks implements Links with rtnetlink.
type netlinkLinks struct{}

func (netlinkLinks) EnsureDummy(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		err = netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}})
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
		if l, err = netlink.LinkByName(name); err != nil {
			return err
		}
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	// No IPv6 link-local address on it when it comes up: it is for Service
	// addresses only (best effort: a kernel without IPv6 has no such setting).
	_ = netlink.LinkSetIP6AddrGenMode(l, addrGenModeNone)
	// The kernel refuses an IPv6 route through a link that is down (IPv4
	// accepts it); kube-proxy leaves kube-ipvs0 down since its addresses need not
	// be up.
	return netlink.LinkSetUp(l)
}

// linkIndex is the index of the named link, 0 if it does not exist.
func linkIndex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, nil
		}
		return 0, err
	}
	return l.Attrs().Index, nil
}

func (netlinkLinks) Addrs(name string) ([]netip.Addr, error) {
	index, err := linkIndex(name)
	if err != nil || index == 0 {
		return nil, err
	}
	routes, err := localroute.List(nil, index)
	if err != nil {
		return nil, err
	}
	return localroute.Addrs(routes), nil
}

func (netlinkLinks) AddAddr(name string, a netip.Addr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.RouteAppend(localroute.Route(l.Attrs().Index, a)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return err
	}
	return nil
}

func (netlinkLinks) DelAddr(name string, a netip.Addr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(localroute.Route(l.Attrs().Index, a)); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (netlinkLinks) IfAddrs(name string) ([]netip.Addr, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, err
	}
	list, err := netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

func hostAddr(a netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
}

func (netlinkLinks) DelIfAddr(name string, a netip.Addr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, hostAddr(a)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	return nil
}

func (netlinkLinks) DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// run executes a tool with stdin and returns stdout; errors carry stderr.
func run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// execIPSet implements IPSet with the ipset tool.
type execIPSet struct{}

func (execIPSet) Restore(ctx context.Context, text string) error {
	_, err := run(ctx, text, "ipset", "restore", "-exist")
	return err
}

func (execIPSet) Save(ctx context.Context) (string, error) {
	return run(ctx, "", "ipset", "save")
}

func (execIPSet) Destroy(ctx context.Context, names []string) error {
	var errs []error
	for _, n := range names {
		if _, err := run(ctx, "", "ipset", "destroy", n); err != nil && !strings.Contains(err.Error(), "does not exist") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// execIptables implements Iptables with iptables-restore and iptables.
type execIptables struct{}

// tool names the iptables tool of a family: iptables-restore is
// ip6tables-restore for IPv6.
func tool(v6 bool, name string) string {
	if v6 {
		return strings.Replace(name, "iptables", "ip6tables", 1)
	}
	return name
}

func (execIptables) Restore(ctx context.Context, v6 bool, text string) error {
	_, err := run(ctx, text, tool(v6, "iptables-restore"), "-w", "--noflush")
	return err
}

func (execIptables) Save(ctx context.Context, v6 bool) (string, error) {
	return run(ctx, "", tool(v6, "iptables-save"))
}

func (execIptables) EnsureRule(ctx context.Context, v6 bool, table, chain string, args []string) error {
	check := append([]string{"-w", "-t", table, "-C", chain}, args...)
	if _, err := run(ctx, "", tool(v6, "iptables"), check...); err == nil {
		return nil
	}
	_, err := run(ctx, "", tool(v6, "iptables"), append([]string{"-w", "-t", table, "-I", chain}, args...)...)
	return err
}

func (execIptables) DeleteRule(ctx context.Context, v6 bool, table, chain string, args []string) error {
	for {
		del := append([]string{"-w", "-t", table, "-D", chain}, args...)
		if _, err := run(ctx, "", tool(v6, "iptables"), del...); err != nil {
			return nil // gone (or never there)
		}
	}
}

// procSysctl implements Sysctl on /proc/sys.
type procSysctl struct{}

func (procSysctl) Get(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	return strings.TrimSpace(string(b)), err
}

func (procSysctl) Set(name, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value+"\n"), 0o644)
}

// addrGenModeNone is IN6_ADDR_GEN_MODE_NONE (linux/if_link.h).
const addrGenModeNone = 1
