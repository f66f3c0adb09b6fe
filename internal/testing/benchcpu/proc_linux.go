package benchcpu

import (
	"time"

	"kproxy.dev/kproxy/internal/procstat"
)

// Of is the CPU time (user + system) process pid has used so far, from
// /proc/PID/stat, in steps of 10 ms; benchmarks use it for a child process.
func Of(pid int) (time.Duration, error) { return procstat.CPU(pid) }
