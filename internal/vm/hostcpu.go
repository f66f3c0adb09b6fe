package vm

import (
	"fmt"
	"time"

	"kproxy.dev/kproxy/internal/procstat"
)

// processCPU is the host CPU time (user plus system) the process pid has used so
// far, from /proc; false where there is no /proc or no such process.
func processCPU(pid int) (time.Duration, bool) {
	d, err := procstat.CPU(pid)
	return d, err == nil
}

// cpuStamp prefixes a console line with the host CPU qemu has used so far: the
// guest's clock is the host's, so on a loaded host a phase in the guest takes
// longer while qemu waits for a core, but not more of qemu's CPU. The difference
// of two stamps is what the guest did between the two lines.
func cpuStamp(pid int, line string) string {
	d, ok := processCPU(pid)
	if !ok {
		return line
	}
	return fmt.Sprintf("[qemu cpu %.1fs] %s", d.Seconds(), line)
}
