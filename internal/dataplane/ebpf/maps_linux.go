//go:build linux

package ebpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Map names; each map is pinned under the pin directory by this name.
const (
	mapServices = "kproxy_svc"
	mapBackends = "kproxy_be"
	mapRevnat   = "kproxy_revnat"
	mapAffinity = "kproxy_aff"
)

// Map sizes. The services map is preallocated (about 5 MB, faster writes); the
// backends map takes memory per entry in use.
const (
	maxServices = 1 << 16
	maxBackends = 1 << 20
	maxRevnat   = 1 << 17
	maxAffinity = 1 << 16
)

func mapSpecs() []*ebpf.MapSpec {
	return []*ebpf.MapSpec{
		{Name: mapServices, Type: ebpf.Hash, KeySize: 20, ValueSize: 16, MaxEntries: maxServices, Pinning: ebpf.PinByName},
		{Name: mapBackends, Type: ebpf.Hash, KeySize: 8, ValueSize: 20, MaxEntries: maxBackends,
			Flags: unix.BPF_F_NO_PREALLOC, Pinning: ebpf.PinByName},
		{Name: mapRevnat, Type: ebpf.LRUHash, KeySize: 32, ValueSize: 20, MaxEntries: maxRevnat, Pinning: ebpf.PinByName},
		{Name: mapAffinity, Type: ebpf.LRUHash, KeySize: 16, ValueSize: 32, MaxEntries: maxAffinity, Pinning: ebpf.PinByName},
	}
}

// kernelMaps are the four maps, opened from their pins or created and pinned.
type kernelMaps struct {
	progMaps
	// adopted is true when the services map existed already (a restart).
	adopted bool
}

func (k *kernelMaps) all() []*ebpf.Map {
	return []*ebpf.Map{k.services, k.backends, k.revnat, k.affinity}
}

func (k *kernelMaps) Close() {
	for _, m := range k.all() {
		if m != nil {
			m.Close()
		}
	}
}

// openMaps opens the pinned maps in dir, creating (and pinning) those missing. A
// pinned map of another layout (an older kproxy) is replaced.
func openMaps(dir string) (*kernelMaps, error) {
	k := &kernelMaps{}
	_, err := os.Stat(filepath.Join(dir, mapServices))
	k.adopted = err == nil
	out := []**ebpf.Map{&k.services, &k.backends, &k.revnat, &k.affinity}
	for i, spec := range mapSpecs() {
		m, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: dir})
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			_ = os.Remove(filepath.Join(dir, spec.Name))
			if i == 0 {
				k.adopted = false
			}
			m, err = ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: dir})
		}
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("create BPF map %s: %w%s", spec.Name, err, permissionHint(err))
		}
		*out[i] = m
	}
	return k, nil
}

func permissionHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (the ebpf mode needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)"
	}
	return ""
}

// ensureBPFFS makes dir a directory on a bpf filesystem. When the default mount
// point /sys/fs/bpf holds no bpffs yet and dir is below it, it mounts one there,
// as Cilium and systemd do.
func ensureBPFFS(dir string) error {
	if err := mountDefaultBPFFS(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin directory %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("pin directory %s: %w", dir, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin directory %s is not on a bpf filesystem (mount one: mount -t bpf bpf %s)", dir, dir)
	}
	return nil
}

const defaultBPFFS = "/sys/fs/bpf"

func mountDefaultBPFFS(dir string) error {
	if dir != defaultBPFFS && !strings.HasPrefix(dir, defaultBPFFS+"/") {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(defaultBPFFS, &st); err != nil {
		return fmt.Errorf("bpf filesystem %s: %w", defaultBPFFS, err)
	}
	if st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", defaultBPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount the bpf filesystem on %s: %w%s", defaultBPFFS, err, permissionHint(err))
	}
	return nil
}

// readMaps reads the services and backends maps back (adoption, kproxy list).
func readMaps(k *kernelMaps) (map[svcKey]svcValue, map[backendKey]backendValue, error) {
	svcs := map[svcKey]svcValue{}
	var sk svcKey
	var sv svcValue
	it := k.services.Iterate()
	for it.Next(&sk, &sv) {
		svcs[sk] = sv
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("read map %s: %w", mapServices, err)
	}
	bes := map[backendKey]backendValue{}
	var bk backendKey
	var bv backendValue
	it = k.backends.Iterate()
	for it.Next(&bk, &bv) {
		bes[bk] = bv
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("read map %s: %w", mapBackends, err)
	}
	return svcs, bes, nil
}

// probeBPF checks that this process may use bpf() at all, so that a start without
// privileges or without BPF fails naming what is missing rather than a path.
func probeBPF() error {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err == nil {
		m.Close()
		return nil
	}
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("the kernel has no usable bpf() system call (CONFIG_BPF_SYSCALL): %w", err)
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("creating a BPF map was refused: the ebpf mode needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (kernel.unprivileged_bpf_disabled is usually set): %w", err)
	}
	return fmt.Errorf("creating a BPF map failed: %w", err)
}
