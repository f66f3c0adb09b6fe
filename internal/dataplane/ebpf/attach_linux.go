//go:build linux

package ebpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// hook is one cgroup sock_addr attach point and the program it runs.
type hook struct {
	name    string
	attach  ebpf.AttachType
	v6, rev bool
}

var hooks = []hook{
	{"connect4", ebpf.AttachCGroupInet4Connect, false, false},
	{"connect6", ebpf.AttachCGroupInet6Connect, true, false},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, false, false},
	{"sendmsg6", ebpf.AttachCGroupUDP6Sendmsg, true, false},
	{"recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, false, true},
	{"recvmsg6", ebpf.AttachCGroupUDP6Recvmsg, true, true},
	{"getpeername4", ebpf.AttachCgroupInet4GetPeername, false, true},
	{"getpeername6", ebpf.AttachCgroupInet6GetPeername, true, true},
}

func linkPin(dir, name string) string { return filepath.Join(dir, "link_"+name) }

// loadProgram builds and verifies the program of a hook.
func loadProgram(h hook, m progMaps) (*ebpf.Program, error) {
	var insns asm.Instructions
	if h.rev {
		insns = reverseInsns(h.v6, m)
	} else {
		insns = forwardInsns(h.v6, m)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "kproxy_" + h.name, Type: ebpf.CGroupSockAddr, AttachType: h.attach,
		Instructions: insns, License: "Apache-2.0",
	})
	if err != nil {
		return nil, fmt.Errorf("load BPF program %s: %w%s", h.name, err, permissionHint(err))
	}
	return p, nil
}

// attachment holds the programs and links of one process.
type attachment struct {
	progs []*ebpf.Program
	links []link.Link
}

func (a *attachment) Close() {
	for _, l := range a.links {
		l.Close()
	}
	for _, p := range a.progs {
		p.Close()
	}
	*a = attachment{}
}

// attach loads every program and puts it on the cgroup. A link pinned by an
// earlier process is updated in place (the hook never runs without a program);
// one pinned on another cgroup is replaced after the new link is up. Every link is
// pinned so that it outlives this process.
func attach(dir, cgroup string, m progMaps) (*attachment, error) {
	cgID, err := cgroupID(cgroup)
	if err != nil {
		return nil, err
	}
	a := &attachment{}
	for _, h := range hooks {
		p, err := loadProgram(h, m)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.progs = append(a.progs, p)
		l, err := attachOne(dir, cgroup, cgID, h, p)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.links = append(a.links, l)
	}
	return a, nil
}

func attachOne(dir, cgroup string, cgID uint64, h hook, p *ebpf.Program) (link.Link, error) {
	pin := linkPin(dir, h.name)
	old, err := link.LoadPinnedLink(pin, nil)
	if err == nil {
		if sameCgroup(old, cgID) {
			if err := old.Update(p); err != nil {
				old.Close()
				return nil, fmt.Errorf("update pinned link %s: %w", pin, err)
			}
			return old, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open pinned link %s: %w", pin, err)
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: h.attach, Program: p})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return nil, fmt.Errorf("attach %s to cgroup %s: %w%s", h.name, cgroup, err, permissionHint(err))
	}
	if old != nil {
		// Another cgroup: the new link is up, the old one goes.
		_ = old.Unpin()
		old.Close()
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link %s: %w", pin, err)
	}
	return l, nil
}

func sameCgroup(l link.Link, id uint64) bool {
	info, err := l.Info()
	if err != nil || info.Cgroup() == nil {
		return false
	}
	return info.Cgroup().CgroupId == id
}

// cgroupID is the kernel's id of a cgroup v2 directory: its inode number.
func cgroupID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("cgroup %s is not a cgroup v2 directory", path)
	}
	return st.Ino, nil
}

// FindCgroup2 returns the mount point of the cgroup v2 hierarchy from
// /proc/self/mountinfo (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified
// on hybrid ones).
func FindCgroup2() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 mount: %w", err)
	}
	defer f.Close()
	return parseCgroup2Mount(f)
}

func parseCgroup2Mount(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return unescapeMount(fields[4]), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 file system is mounted (see /proc/self/mountinfo); the ebpf mode attaches to the cgroup v2 root")
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// detachPinned unpins and closes every link pinned in dir, which detaches its
// program, and removes the pinned maps.
func detachPinned(dir string) error {
	var errs []error
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pin directory %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), "link_") {
			if l, err := link.LoadPinnedLink(p, nil); err == nil {
				_ = l.Unpin()
				l.Close()
				continue
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
