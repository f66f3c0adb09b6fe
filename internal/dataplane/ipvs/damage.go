//go:build linux

package ipvs

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"kproxy.dev/kproxy/internal/dataplane"
)

var _ dataplane.Checker = (*Proxier)(nil)

// Damaged implements dataplane.Checker: it reads the kernel's virtual and real
// servers, the ipset entries, the local routes through kube-ipvs0 and the jumps into kproxy's
// chains, and reports whether any differs from what kproxy applied (someone ran
// `ipvsadm -C`, `ipset flush`, deleted a route or a jump). It writes nothing;
// the full sync that follows writes only the differences.
func (p *Proxier) Damaged(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.needFull {
		return true, nil
	}
	for _, check := range []func(context.Context) (string, error){p.serversDiffer, p.setsDiffer, p.addrsDiffer, p.jumpsDiffer} {
		what, err := check(ctx)
		if err != nil {
			return true, err
		}
		if what != "" {
			p.log.Info("ipvs: kernel state differs from what kproxy wrote", "what", what)
			return true, nil
		}
	}
	return false, nil
}

func (p *Proxier) serversDiffer(context.Context) (string, error) {
	kernel, err := p.readKernel()
	if err != nil {
		return "", err
	}
	for key, vs := range p.servers {
		kv := kernel[key]
		if kv == nil {
			return "virtual server " + key.String() + " missing", nil
		}
		for d, w := range vs.Dests {
			if kw, ok := kv.Dests[d]; !ok || kw != w {
				return "real server " + d.String() + " of " + key.String(), nil
			}
		}
		// A real server kproxy removed stays in the kernel at weight 0 while its
		// connections drain (graceful termination): only a weighted stranger is
		// damage.
		for d, kw := range kv.Dests {
			if _, ok := vs.Dests[d]; !ok && kw != 0 {
				return "real server " + d.String() + " of " + key.String() + " not kproxy's", nil
			}
		}
	}
	for key := range kernel {
		if p.servers[key] == nil && !p.excluded(key.Addr) {
			return "virtual server " + key.String() + " not kproxy's", nil
		}
	}
	return "", nil
}

func (p *Proxier) setsDiffer(ctx context.Context) (string, error) {
	saved, err := p.k.IPSet.Save(ctx)
	if err != nil {
		return "", fmt.Errorf("ipset save: %w", err)
	}
	have := parseSave(saved)
	n := 0
	for e, c := range p.sets {
		if c <= 0 {
			continue
		}
		n++
		if !have[e] {
			return "ipset entry " + e.Set + " " + e.Entry + " missing", nil
		}
	}
	if len(have) != n {
		return "ipset entries", nil
	}
	return "", nil
}

func (p *Proxier) addrsDiffer(context.Context) (string, error) {
	bound, err := p.k.Links.Addrs(DummyLink)
	if err != nil {
		return "", fmt.Errorf("list local routes through %s: %w", DummyLink, err)
	}
	have := make(map[netip.Addr]bool, len(bound))
	for _, a := range bound {
		have[a] = true
	}
	for a := range p.addrs {
		if !have[a] {
			return "local route " + a.String() + " through " + DummyLink, nil
		}
	}
	if len(have) != len(p.addrs) {
		return "local routes through " + DummyLink, nil
	}
	return "", nil
}

func (p *Proxier) jumpsDiffer(ctx context.Context) (string, error) {
	for i, ready := range p.ready {
		if !ready {
			continue
		}
		saved, err := p.k.Iptables.Save(ctx, i == 1)
		if err != nil {
			return "", err
		}
		for _, j := range jumpRules {
			if !strings.Contains(saved, j.saveLine()) {
				return "jump " + strings.TrimSpace(j.saveLine()), nil
			}
		}
	}
	return "", nil
}
