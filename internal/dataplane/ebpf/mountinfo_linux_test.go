//go:build linux

package ebpf

import (
	"strings"
	"testing"
)

func TestParseCgroup2MountHybrid(t *testing.T) {
	mi := `25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
`
	got, err := parseCgroup2Mount(strings.NewReader(mi))
	if err != nil || got != "/sys/fs/cgroup/unified" {
		t.Errorf("got %q, %v", got, err)
	}
	_, err = parseCgroup2Mount(strings.NewReader("42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"))
	if err == nil || !strings.Contains(err.Error(), "cgroup2") {
		t.Errorf("no cgroup2 mount: %v", err)
	}
}
