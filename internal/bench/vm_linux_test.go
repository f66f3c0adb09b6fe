//go:build linux

package bench

import (
	"strings"
	"testing"
)

// The guest's bench compare skips the baseline load only when asked: `bench
// scale` asks, as for its host points (at 70,000 Services the baseline alone
// would take hours in the emulated guest).
func TestVMScriptPassesNoBaseline(t *testing.T) {
	o := VMOptions{Modes: []string{"ipvs"}, Services: []int{70000}, Endpoints: 1, Connects: 1, PartialRuns: 3, EndpointRuns: 3}
	if s := vmScript(o); strings.Contains(s, "--no-baseline") || !strings.Contains(s, "--services 70000 --endpoints 1") {
		t.Errorf("without NoBaseline:\n%s", s)
	}
	o.NoBaseline = true
	if s := vmScript(o); !strings.Contains(s, "--endpoint-runs 3 --json --no-baseline") {
		t.Errorf("with NoBaseline:\n%s", s)
	}
}

// The guest's bench runs with a node's descriptor limit: userspace mode at
// 10,000 Services needs 10,000 listeners, and the guest init leaves 4,096.
func TestVMScriptRaisesDescriptorLimit(t *testing.T) {
	s := vmScript(VMOptions{Modes: []string{"userspace"}, Services: []int{10000}, Endpoints: 5})
	if !strings.HasPrefix(s, "ulimit -n 524288\n") {
		t.Errorf("script does not raise RLIMIT_NOFILE first:\n%s", s)
	}
}
