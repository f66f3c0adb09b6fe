//go:build linux

package ipvs

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// IP protocol numbers, as IPVS keys virtual servers by them.
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// Virtual server flags (include/uapi/linux/ip_vs.h).
const (
	flagPersistent = 0x0001
	flagHashed     = 0x0002 // set by the kernel, never by us
	flagSched1     = 0x0008 // mh-fallback / sh-fallback
	flagSched2     = 0x0010 // mh-port / sh-port
	flagSched3     = 0x0020
)

// vsKey identifies a virtual server.
type vsKey struct {
	Addr  netip.Addr
	Port  uint16
	Proto uint16
}

func (k vsKey) String() string {
	return fmt.Sprintf("%s/%s", protoName(k.Proto), netip.AddrPortFrom(k.Addr, k.Port))
}

// virtualServer is the desired (or programmed) state of one IPVS service.
type virtualServer struct {
	Key       vsKey
	Scheduler string
	Flags     uint32
	// Timeout is the persistence timeout in seconds (ClientIP affinity); 0 when none.
	Timeout uint32
	// Dests maps each real server to its weight.
	Dests map[netip.AddrPort]int
	// Owner is the ServicePort the virtual server belongs to, for `kproxy list`.
	Owner string
}

// sameService reports whether the service attributes (not the real servers) match.
func (vs *virtualServer) sameService(o *virtualServer) bool {
	return vs.Scheduler == o.Scheduler && vs.Flags == o.Flags && vs.Timeout == o.Timeout
}

func protoNumber(p v1.Protocol) uint16 {
	switch p {
	case v1.ProtocolTCP:
		return protoTCP
	case v1.ProtocolUDP:
		return protoUDP
	case v1.ProtocolSCTP:
		return protoSCTP
	}
	return 0
}

func protoName(n uint16) string {
	switch n {
	case protoTCP:
		return "TCP"
	case protoUDP:
		return "UDP"
	case protoSCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", n)
}

// schedulerFlags maps kproxy's scheduler flag names to the kernel's per-scheduler
// flag bits: "<sched>-fallback" is SCHED1 and "<sched>-port" is SCHED2 (mh and sh),
// as ipvsadm's -b option does.
func schedulerFlags(sched string, names []string) (uint32, error) {
	var f uint32
	for _, n := range names {
		suffix, ok := strings.CutPrefix(n, sched+"-")
		switch {
		case ok && suffix == "fallback":
			f |= flagSched1
		case ok && suffix == "port":
			f |= flagSched2
		default:
			return 0, fmt.Errorf("scheduler %q does not accept flag %q", sched, n)
		}
	}
	return f, nil
}

// flagNames is the inverse of schedulerFlags for `kproxy list` (persistence is
// shown from PersistentSeconds, as ipvsadm does).
func flagNames(sched string, flags uint32) []string {
	var out []string
	if flags&flagSched1 != 0 {
		out = append(out, sched+"-fallback")
	}
	if flags&flagSched2 != 0 {
		out = append(out, sched+"-port")
	}
	if flags&flagSched3 != 0 {
		out = append(out, "sched-flag-3")
	}
	return out
}

// KernelSchedulers are the IPVS schedulers of Linux, each in module ip_vs_<name>.
var KernelSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

func knownScheduler(s string) bool {
	for _, k := range KernelSchedulers {
		if k == s {
			return true
		}
	}
	return false
}
