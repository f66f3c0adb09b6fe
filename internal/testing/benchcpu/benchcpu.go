//go:build unix

// Package benchcpu reports the CPU time a benchmark used per operation
// (cpu-ns/op). On a machine shared with other work, wall time per op includes
// the time the benchmark waited for a CPU; CPU time (user + system of this
// process, the GC's included) does not. Test support only: never linked into
// the kproxy binary.
package benchcpu

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Now is the CPU time this process has used so far; 0 if it cannot be read.
func Now() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report adds the cpu-ns/op metric: the CPU time used since start (a Now
// value), divided by b.N.
func Report(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(Now()-start)/float64(b.N), "cpu-ns/op")
}

// Children is the CPU time (user + system) used so far by this process's children
// that have ended and been waited for: the iptables-restore and nft processes a
// sync runs, including the kernel work their netlink calls do. 0 if it cannot be
// read.
func Children() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportChildren adds the child-cpu-ns/op metric: the children's CPU time since
// start (a Children value), divided by b.N.
func ReportChildren(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(Children()-start)/float64(b.N), "child-cpu-ns/op")
}
