//go:build linux

package ebpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// DefaultPinDir is where maps and links are pinned.
const DefaultPinDir = "/sys/fs/bpf/kproxy"

// Config builds a Proxier.
type Config struct {
	// PinDir is the bpffs directory of the pins (DefaultPinDir when empty).
	PinDir string
	// Cgroup is the cgroup v2 directory the programs attach to; empty means the
	// root of the cgroup v2 mount.
	Cgroup string
	Render RenderOptions
	// NorthSouth, when not nil, is given every request too: the nftables mode,
	// for NodePort, LoadBalancer and externalIPs traffic.
	NorthSouth dataplane.Programmer
	// DestroySockets destroys sockets connected to backends that no Service uses
	// any more (netlink SOCK_DESTROY), so clients reconnect at once.
	DestroySockets bool
	Logger         *slog.Logger
}

// Proxier is the ebpf dataplane.
type Proxier struct {
	cfg  Config
	log  *slog.Logger
	maps *kernelMaps
	att  *attachment

	mu    sync.Mutex // table, for List during Apply
	table *Table
	// needFull forces the next Apply to diff everything (first sync, after a
	// failed apply); retry holds ServicePorts that failed to render.
	needFull bool
	retry    map[state.ServicePortName]struct{}
	warned   map[string]bool

	// destroyQ feeds the socket-destroy worker: listing every socket of the host
	// costs milliseconds, which Apply does not wait for. pendingDestroy counts
	// queued batches (waitDestroy, for tests); workerDone closes when it exits.
	destroyQ       chan []netip.AddrPort
	pendingDestroy sync.WaitGroup
	workerDone     chan struct{}
}

var _ dataplane.Lister = (*Proxier)(nil)

// NewProxier opens (or creates) the pinned maps, loads the programs and attaches
// them, taking over what an earlier process pinned without a gap.
func NewProxier(c Config) (*Proxier, error) {
	if c.PinDir == "" {
		c.PinDir = DefaultPinDir
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := probeBPF(); err != nil {
		return nil, fmt.Errorf("ebpf mode: %w", err)
	}
	if c.Cgroup == "" {
		cg, err := FindCgroup2()
		if err != nil {
			return nil, fmt.Errorf("ebpf mode: %w", err)
		}
		c.Cgroup = cg
	}
	if _, err := cgroupID(c.Cgroup); err != nil {
		return nil, fmt.Errorf("ebpf mode: %w", err)
	}
	if err := ensureBPFFS(c.PinDir); err != nil {
		return nil, fmt.Errorf("ebpf mode: %w", err)
	}
	m, err := openMaps(c.PinDir)
	if err != nil {
		return nil, fmt.Errorf("ebpf mode: %w", err)
	}
	p := &Proxier{cfg: c, log: c.Logger.With("mode", ModeName), maps: m, table: NewTable(),
		needFull: true, retry: map[state.ServicePortName]struct{}{}, warned: map[string]bool{}}
	if m.adopted {
		if err := p.adopt(); err != nil {
			m.Close()
			return nil, fmt.Errorf("ebpf mode: %w", err)
		}
	}
	att, err := attach(c.PinDir, c.Cgroup, m.progMaps)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("ebpf mode: %w", err)
	}
	p.att = att
	if c.DestroySockets {
		p.destroyQ, p.workerDone = make(chan []netip.AddrPort, 64), make(chan struct{})
		go p.destroyWorker()
	}
	p.log.Info("socket load balancing attached", "cgroup", c.Cgroup, "pins", c.PinDir,
		"adoptedServices", p.table.Len())
	return p, nil
}

// adopt reads the maps back into the table.
func (p *Proxier) adopt() error {
	svcs, bes, err := readMaps(p.maps)
	if err != nil {
		return err
	}
	p.table.Adopt(svcs, bes)
	return nil
}

// Apply implements dataplane.Programmer: render the ports in scope (all of them
// when req.Full, after a failed write, or on the first sync after adopting pinned
// maps; else req.Changed plus the ports that failed to render last time), diff
// them against the table and write the difference. The north-south dataplane
// gets the same request.
func (p *Proxier) Apply(ctx context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	want, scope, full, errs := p.render(req)
	p.mu.Lock()
	ops, perrs := p.table.Plan(want, scope)
	errs = append(errs, perrs...)
	err := applyOps(p.maps, ops)
	var gone []netip.AddrPort
	if err != nil {
		p.needFull = true
		if aerr := p.adopt(); aerr != nil {
			err = errors.Join(err, aerr)
		}
	} else {
		p.needFull = false
		gone = p.table.Commit(ops)
	}
	st := p.stats(full, ops.Len())
	p.mu.Unlock()
	if err != nil {
		return st, fmt.Errorf("ebpf mode: write maps: %w", err)
	}
	if p.destroyQ != nil && len(gone) > 0 {
		p.pendingDestroy.Add(1)
		p.destroyQ <- gone
	}
	p.retry = map[state.ServicePortName]struct{}{}
	for _, e := range errs {
		var pe *PortError
		if errors.As(e, &pe) {
			p.retry[pe.Port] = struct{}{}
		}
	}
	if p.cfg.NorthSouth != nil {
		nst, nerr := p.cfg.NorthSouth.Apply(ctx, req)
		for k, v := range nst.Rules {
			st.Rules["nftables-"+k] = v
		}
		for k, v := range nst.Written {
			st.Written["nftables-"+k] = v
		}
		if nerr != nil {
			return st, fmt.Errorf("ebpf mode: north-south (nftables): %w", nerr)
		}
	}
	if len(errs) > 0 {
		return st, &dataplane.PartialError{Errs: errs}
	}
	return st, nil
}

// render computes the desired contents in the scope of this sync.
func (p *Proxier) render(req *dataplane.Request) (Desired, Scope, bool, []error) {
	o := p.cfg.Render
	o.Endpoints = req.Endpoints
	if req.Full || p.needFull {
		d, errs := Render(req.Snapshot, o)
		return d, Scope{All: true}, true, errs
	}
	ports := make(map[state.ServicePortName]struct{}, len(req.Changed)+len(p.retry))
	names := make([]state.ServicePortName, 0, len(ports))
	for _, set := range []map[state.ServicePortName]struct{}{req.Changed, p.retry} {
		for n := range set {
			if _, dup := ports[n]; !dup {
				ports[n] = struct{}{}
				names = append(names, n)
			}
		}
	}
	state.SortNames(names)
	d, errs := RenderPorts(req.Snapshot, names, o)
	return d, Scope{Ports: ports}, false, errs
}

func (p *Proxier) stats(full bool, written int) dataplane.Applied {
	slots := p.table.Slots()
	return dataplane.Applied{Full: full,
		Rules:   map[string]int{"services": p.table.Len(), "backends": slots},
		Written: map[string]int{"entries": written}}
}

// Close releases this process's handles and leaves everything pinned: the
// programs keep balancing until another process takes the pins over.
func (p *Proxier) Close() {
	if p.destroyQ != nil {
		close(p.destroyQ)
		<-p.workerDone
		p.destroyQ = nil
	}
	if p.att != nil {
		p.att.Close()
	}
	if p.maps != nil {
		p.maps.Close()
	}
}

// Cleanup implements dataplane.Programmer: it detaches the programs and removes
// every pin, which frees the maps, then cleans the north-south dataplane.
func (p *Proxier) Cleanup(ctx context.Context) error {
	p.Close()
	err := detachPinned(p.cfg.PinDir)
	if p.cfg.NorthSouth != nil {
		err = errors.Join(err, p.cfg.NorthSouth.Cleanup(ctx))
	}
	return err
}
