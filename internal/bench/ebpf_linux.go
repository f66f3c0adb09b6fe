//go:build linux

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Environment variables the ebpf mode reads for its attach point and pin
// directory (see internal/dataplane/ebpf).
const (
	envEBPFCgroup = "KPROXY_EBPF_CGROUP"
	envEBPFPinDir = "KPROXY_EBPF_PIN_DIR"
)

// isolateEBPF keeps a measurement of the ebpf mode to this process: it moves the
// measuring process into a new child cgroup and points the mode at it, and at a
// private bpffs, instead of the host's cgroup v2 root and /sys/fs/bpf, which would
// translate every process's connects on the host. The returned function undoes it.
func isolateEBPF(mode string) (func(), error) {
	if mode != "ebpf" {
		return func() {}, nil
	}
	root, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	back := filepath.Join(root, ownV2Path(string(self)), "cgroup.procs")
	cg := filepath.Join(root, fmt.Sprintf("kproxy-bench-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return nil, fmt.Errorf("bench cgroup: %w", err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0o644); err != nil {
		_ = os.Remove(cg)
		return nil, fmt.Errorf("join bench cgroup: %w", err)
	}
	bpffs, err := os.MkdirTemp("", "kproxy-bench-bpffs")
	if err == nil {
		err = unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700")
	}
	undo := func() {
		_ = os.WriteFile(back, pid, 0o644)
		_ = os.Remove(cg)
		if bpffs != "" {
			_ = unix.Unmount(bpffs, unix.MNT_DETACH)
			_ = os.Remove(bpffs)
		}
	}
	if err != nil {
		undo()
		return nil, fmt.Errorf("bench bpffs: %w", err)
	}
	os.Setenv(envEBPFCgroup, cg)
	os.Setenv(envEBPFPinDir, filepath.Join(bpffs, "kproxy"))
	return undo, nil
}

func ownV2Path(procCgroup string) string {
	for _, l := range strings.Split(procCgroup, "\n") {
		if rest, ok := strings.CutPrefix(l, "0::"); ok {
			return rest
		}
	}
	return "/"
}

func cgroup2Mount() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 {
				return f[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount for the ebpf mode")
}
