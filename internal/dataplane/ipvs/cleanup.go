//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	mobyipvs "github.com/moby/ipvs"

	"kproxy.dev/kproxy/internal/dataplane"
)

// CleanupMode removes what IPVS mode left behind, without a daemon: the virtual
// servers (except those in ipvs.excludeCIDRs), kube-ipvs0, the iptables rules and the
// ipsets. On a node without IPVS, ipset or iptables it does what it can and succeeds.
func CleanupMode(ctx context.Context, o dataplane.Options) error {
	po, err := optionsFromConfig(o)
	if err != nil {
		return err
	}
	k := Kernel{Links: netlinkLinks{}, IPSet: execIPSet{}, Iptables: execIptables{}}
	if ipvsAvailable() {
		h, err := mobyipvs.New("")
		if err != nil {
			return fmt.Errorf("ipvs cleanup: %w", err)
		}
		defer h.Close()
		k.IPVS = h
	}
	if _, err := exec.LookPath("ipset"); err != nil {
		k.IPSet = nil
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		k.Iptables = nil
	}
	return cleanup(ctx, k, po.ExcludeCIDRs)
}

// Cleanup removes everything the dataplane programmed.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reset()
	p.graceful.pending = map[drainKey]time.Time{}
	p.objects = 0
	p.needFull = true
	return cleanup(ctx, p.k, p.o.ExcludeCIDRs)
}

// cleanup removes, in dependency order: virtual servers, the link (with its
// addresses), the jump rules and chains, then the ipsets the chains referenced.
func cleanup(ctx context.Context, k Kernel, exclude []netip.Prefix) error {
	var errs []error
	if k.IPVS != nil {
		errs = append(errs, deleteServers(k.IPVS, exclude))
	}
	if k.Links != nil {
		if err := k.Links.DeleteLink(DummyLink); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", DummyLink, err))
		}
	}
	if k.Iptables != nil {
		for _, v6 := range []bool{false, true} {
			saved, err := k.Iptables.Save(ctx, v6)
			if err == nil && !hasOurChains(saved) {
				continue // nothing of ours in this family
			}
			for _, j := range jumpRules {
				if err != nil || strings.Contains(saved, j.saveLine()) {
					_ = k.Iptables.DeleteRule(ctx, v6, j.Table, j.Chain, j.Args)
				}
			}
			if err := k.Iptables.Restore(ctx, v6, renderFlush()); err != nil && !v6 {
				errs = append(errs, fmt.Errorf("delete chains: %w", err))
			}
		}
	}
	if k.IPSet != nil {
		errs = append(errs, k.IPSet.Destroy(ctx, append(allSetNames(), growTempSet)))
	}
	return errors.Join(errs...)
}

func deleteServers(h IPVS, exclude []netip.Prefix) error {
	svcs, err := h.GetServices()
	if err != nil {
		return fmt.Errorf("list IPVS virtual servers: %w", err)
	}
	var errs []error
outer:
	for _, s := range svcs {
		vs, ok := fromService(s)
		if ok {
			for _, c := range exclude {
				if c.Contains(vs.Key.Addr) {
					continue outer
				}
			}
		}
		if err := h.DelService(s); err != nil {
			errs = append(errs, fmt.Errorf("delete virtual server %s: %w", vs.Key, err))
		}
	}
	return errors.Join(errs...)
}

// hasOurChains reports whether iptables-save output shows any chain IPVS mode owns
// (another mode's cleanup may have removed the ones it shares with us).
func hasOurChains(saved string) bool {
	for _, c := range append(natChains(), filterChains()...) {
		if strings.Contains(saved, ":"+c+" ") {
			return true
		}
	}
	return false
}
