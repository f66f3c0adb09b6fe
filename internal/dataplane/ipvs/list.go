//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	mobyipvs "github.com/moby/ipvs"

	"kproxy.dev/kproxy/internal/dataplane"
)

// kernelLister reads the kernel's virtual server table, like `ipvsadm -Ln --stats
// --rate`. owners names the ServicePort of each virtual server when a daemon knows it.
type kernelLister struct {
	h      IPVS
	owners func() map[vsKey]string
}

// NewLister lists the kernel's IPVS table without the daemon's preflight, for
// `kproxy list` on a node where the daemon runs in IPVS mode. It fails when the
// kernel has no IPVS.
func NewLister() (dataplane.Lister, error) {
	if !ipvsAvailable() {
		return nil, errors.New("ipvs: the kernel has no IPVS (modprobe ip_vs), so there is no table to list")
	}
	h, err := mobyipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("ipvs: netlink: %w", err)
	}
	return &kernelLister{h: h}, nil
}

// ListKernel lists the kernel's IPVS table once, for `kproxy list --kernel`.
func ListKernel(ctx context.Context) ([]dataplane.VirtualService, error) {
	l, err := NewLister()
	if err != nil {
		return nil, err
	}
	defer l.(*kernelLister).Close()
	return l.List(ctx)
}

// Close releases the netlink socket of a lister made by NewLister.
func (l *kernelLister) Close() {
	if h, ok := l.h.(*mobyipvs.Handle); ok {
		h.Close()
	}
}

// List shows the kernel table with the Service names this daemon programmed.
func (p *Proxier) List(ctx context.Context) ([]dataplane.VirtualService, error) {
	l := kernelLister{h: p.k.IPVS, owners: func() map[vsKey]string {
		p.mu.Lock()
		defer p.mu.Unlock()
		out := make(map[vsKey]string, len(p.servers))
		for k, vs := range p.servers {
			out[k] = vs.Owner
		}
		return out
	}}
	return l.List(ctx)
}

func (l *kernelLister) List(ctx context.Context) ([]dataplane.VirtualService, error) {
	svcs, err := l.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list IPVS virtual servers: %w", err)
	}
	owners := map[vsKey]string{}
	if l.owners != nil {
		owners = l.owners()
	}
	out := make([]dataplane.VirtualService, 0, len(svcs))
	for _, s := range svcs {
		vs, ok := fromService(s)
		if !ok {
			continue
		}
		dests, err := l.h.GetDestinations(s)
		if err != nil {
			return nil, fmt.Errorf("list real servers of %s: %w", vs.Key, err)
		}
		row := dataplane.VirtualService{
			Service:     owners[vs.Key],
			Protocol:    protoName(vs.Key.Proto),
			Address:     netip.AddrPortFrom(vs.Key.Addr, vs.Key.Port).String(),
			Scheduler:   vs.Scheduler,
			Flags:       flagNames(vs.Scheduler, vs.Flags),
			RealServers: make([]dataplane.RealServer, 0, len(dests)),
			Stats:       stats(mobyipvs.SvcStats(s.Stats)),
		}
		if vs.Flags&flagPersistent != 0 {
			row.PersistentSeconds = int(vs.Timeout)
		}
		for _, d := range dests {
			row.RealServers = append(row.RealServers, dataplane.RealServer{
				Address:    destAddr(d).String(),
				Forward:    forwardName(d.ConnectionFlags),
				Weight:     d.Weight,
				ActiveConn: int64(d.ActiveConnections),
				InActConn:  int64(d.InactiveConnections),
				Stats:      stats(mobyipvs.SvcStats(d.Stats)),
			})
		}
		sort.Slice(row.RealServers, func(i, j int) bool { return row.RealServers[i].Address < row.RealServers[j].Address })
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].Address < out[j].Address
	})
	return out, nil
}

func stats(s mobyipvs.SvcStats) *dataplane.Stats {
	return &dataplane.Stats{
		Conns: uint64(s.Connections), InPkts: uint64(s.PacketsIn), OutPkts: uint64(s.PacketsOut),
		InBytes: s.BytesIn, OutBytes: s.BytesOut,
		CPS: float64(s.CPS), InPPS: float64(s.PPSIn), OutPPS: float64(s.PPSOut),
		InBPS: float64(s.BPSIn), OutBPS: float64(s.BPSOut),
	}
}

func forwardName(flags uint32) string {
	switch flags & mobyipvs.ConnectionFlagFwdMask {
	case mobyipvs.ConnectionFlagMasq:
		return "Masq"
	case mobyipvs.ConnectionFlagLocalNode:
		return "Local"
	case mobyipvs.ConnectionFlagTunnel:
		return "Tunnel"
	case mobyipvs.ConnectionFlagDirectRoute:
		return "Route"
	}
	return fmt.Sprintf("fwd-%d", flags&mobyipvs.ConnectionFlagFwdMask)
}
