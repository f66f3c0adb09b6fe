package userspace

import (
	"errors"
	"fmt"
	"strings"
)

// Every frontend that listens holds one socket, so the number of Service
// addresses and ports a node can serve in userspace mode is bounded by the
// process's descriptor limit: 10,000 Services need 10,000 descriptors, and
// 50,000 do not fit under a limit of 20,000 (this project's test host). The
// listeners stop listenerReserve short of the limit, so that the relays, the
// API server's connection, the address manager's netlink socket and the logs
// keep descriptors to work with; the frontends beyond are refused, all in one
// error (see budgetError), and retried on every Sync like any failed Service.

// listenerReserve is how many descriptors the listeners leave to the rest.
const listenerReserve = 1024

// errNoDescriptors marks a frontend refused for the listener budget.
var errNoDescriptors = errors.New("no descriptor left for a listener")

// listenerBudget is how many sockets the frontends may hold: the descriptor
// limit less listenerReserve (half the limit when that is small), or 0 (no
// bound) when the limit is unknown.
func listenerBudget(nofile uint64) int {
	switch {
	case nofile == 0:
		return 0
	case nofile > 2*listenerReserve:
		return int(min(nofile, 1<<30)) - listenerReserve
	default:
		return max(1, int(nofile)/2)
	}
}

// budgetError collapses the frontends refused for the budget, among errs,
// into one error that says why and what to do; the other errors are kept.
func (p *Proxier) budgetError(errs []error) []error {
	var refused []string
	kept := errs[:0]
	for _, err := range errs {
		if errors.Is(err, errNoDescriptors) {
			refused = append(refused, strings.SplitN(err.Error(), ": "+errNoDescriptors.Error(), 2)[0])
			continue
		}
		kept = append(kept, err)
	}
	if len(refused) == 0 {
		return kept
	}
	first := refused[:min(3, len(refused))]
	return append(kept, fmt.Errorf("%d Service ports have no listener (%s%s): userspace mode holds one socket per "+
		"Service address and port, and the descriptor limit (RLIMIT_NOFILE %d) leaves room for %d listeners, "+
		"%d descriptors being kept for relays and the rest of kproxy: raise the limit (systemd LimitNOFILE=, "+
		"the container runtime's nofile ulimit) or use a kernel mode: %w",
		len(refused), strings.Join(first, "; "), moreSuffix(len(refused)-len(first)),
		p.nofile, p.budget, listenerReserve, errNoDescriptors))
}

func moreSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; and %d more", n)
}
