package vm

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on every
// Linux architecture this runs on).
const userHZ = 100

// processCPU is the host CPU time (user plus system) the process pid has used so
// far, from /proc; false where there is no /proc or no such process.
func processCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / userHZ, true
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
