//go:build linux

package ebpf

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"kproxy.dev/kproxy/internal/dataplane"
)

// List implements dataplane.Lister from the table this process wrote.
func (p *Proxier) List(ctx context.Context) ([]dataplane.VirtualService, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return listTable(p.table), ctx.Err()
}

// listTable renders the table as `kproxy list` rows: one virtual service per
// Service address, one real server per distinct backend with its slot count as
// weight. Forward is "Socket": the translation happens in connect()/sendmsg().
func listTable(t *Table) []dataplane.VirtualService {
	keys := make([]svcKey, 0, len(t.cur))
	for k := range t.cur {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b svcKey) int {
		if c := a.addrPort().Compare(b.addrPort()); c != 0 {
			return c
		}
		return int(a.Proto) - int(b.Proto)
	})
	out := make([]dataplane.VirtualService, 0, len(keys))
	for _, k := range keys {
		out = append(out, virtualService(k, t.cur[k]))
	}
	return out
}

func virtualService(k svcKey, in *installed) dataplane.VirtualService {
	vs := dataplane.VirtualService{Protocol: protoName(k.Proto), Address: k.addrPort().String(),
		Scheduler: schedName(in.val.Sched), PersistentSeconds: int(in.val.AffinitySec),
		RealServers: []dataplane.RealServer{}}
	if in.front != nil {
		vs.Service = in.front.Port.String()
	}
	if in.val.Flags&flagHashSocket != 0 {
		vs.Flags = append(vs.Flags, "mh-port")
	}
	count := map[backendValue]int{}
	var order []backendValue
	for _, s := range in.slots[:min(len(in.slots), int(in.val.Count))] {
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	for _, s := range order {
		vs.RealServers = append(vs.RealServers, dataplane.RealServer{
			Address: s.addrPort().String(), Forward: "Socket", Weight: count[s]})
	}
	return vs
}

// listPinned reads the pinned maps of dir (`kproxy list --kernel --mode ebpf`).
func listPinned(dir string) ([]dataplane.VirtualService, error) {
	k := &kernelMaps{}
	defer k.Close()
	var err error
	if k.services, err = ebpf.LoadPinnedMap(filepath.Join(dir, mapServices), &ebpf.LoadPinOptions{ReadOnly: true}); err != nil {
		return nil, fmt.Errorf("ebpf mode: open pinned map (is the ebpf mode running?): %w", err)
	}
	if k.backends, err = ebpf.LoadPinnedMap(filepath.Join(dir, mapBackends), &ebpf.LoadPinOptions{ReadOnly: true}); err != nil {
		return nil, fmt.Errorf("ebpf mode: open pinned map: %w", err)
	}
	svcs, bes, err := readMaps(k)
	if err != nil {
		return nil, err
	}
	t := NewTable()
	t.Adopt(svcs, bes)
	return listTable(t), nil
}
