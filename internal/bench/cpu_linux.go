//go:build linux

package bench

import "golang.org/x/sys/unix"

// cpuMeter measures CPU time of this process (RUSAGE_SELF) and of the finished
// child processes it waited for (RUSAGE_CHILDREN): iptables-restore, nft, ipset.
type cpuMeter struct{ self, children float64 }

func startCPU() cpuMeter {
	return cpuMeter{self: rusage(unix.RUSAGE_SELF), children: rusage(unix.RUSAGE_CHILDREN)}
}

// stop returns the CPU seconds used since startCPU: kproxy's own and the tools'.
func (c cpuMeter) stop() (self, children float64) {
	return rusage(unix.RUSAGE_SELF) - c.self, rusage(unix.RUSAGE_CHILDREN) - c.children
}

func rusage(who int) float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
