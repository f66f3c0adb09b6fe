//go:build linux

package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"kproxy.dev/kproxy/internal/vm"
)

// VMOptions say what `bench compare --vm` measures inside the qemu VM.
type VMOptions struct {
	// Exe is the static kproxy binary to boot with; "" means this very binary.
	Exe         string
	Modes       []string
	Services    []int
	Endpoints   int
	Connects    int
	PartialRuns int
	// EndpointRuns is Spec.EndpointRuns: one-endpoint changes timed per size.
	EndpointRuns int
	// NoBaseline is Spec.NoBaseline: no baseline load after the syncs.
	NoBaseline bool
	// Progress receives the guest's console (boot messages and progress lines).
	Progress io.Writer
	// Timeout bounds the whole boot; 0 means 60 minutes (the guest is emulated).
	Timeout time.Duration
	// MemoryMB is the guest's memory; 0 means vmMemoryMB (4096).
	MemoryMB int
}

const libm = "/usr/lib/x86_64-linux-gnu/libm.so.6"

// vmMemoryMB is the guest's memory. At 100,000 Services x 5 endpoints the
// measuring process alone peaks near 2 GiB in the guest (40,000 x 5: 0.7 GiB), and
// the initramfs, the IPVS tables, routes and ipsets live in the same memory; qemu
// takes host memory only as the guest touches it.
const vmMemoryMB = 4096

const (
	vmJSONBegin = "KPROXY-COMPARE-JSON-BEGIN"
	vmJSONEnd   = "KPROXY-COMPARE-JSON-END"
)

// RunInVM boots the test kernel of internal/vm with this kproxy binary
// (which must be static: CGO_ENABLED=0), runs `kproxy bench compare --json` for
// the given modes inside it and returns its results marked Where="vm".
func RunInVM(ctx context.Context, o VMOptions) ([]Result, error) {
	k, err := vm.Locate()
	if err != nil {
		return nil, err
	}
	exe := o.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 60 * time.Minute
	}
	console := &linePrefixer{w: o.Progress, prefix: "vm| "}
	if o.Progress == nil {
		console.w = io.Discard
	}
	res, err := vm.Run(ctx, k, vm.Options{
		Files: map[string]string{
			"/usr/local/bin/kproxy": exe,
			// The iptables statistic extension (endpoint choice) needs libm; the
			// harness carries extensions but not their libraries.
			libm: libm,
		},
		Programs: append(slices.Clone(vm.DefaultPrograms), "/usr/sbin/nft"),
		Load:     []string{"ip_vs", "ip_vs_rr", "dummy", "veth", "nf_conntrack"},
		Script:   vmScript(o),
		Timeout:  timeout,
		MemoryMB: cmp.Or(o.MemoryMB, vmMemoryMB),
		Console:  console,
		// Progress lines carry qemu's host CPU: on a loaded host the guest's own
		// times stretch with the wait for a core, the CPU between two lines does not.
		StampHostCPU: true,
	})
	if err != nil {
		return nil, fmt.Errorf("bench in VM: %w", err)
	}
	results, perr := parseVMOutput(res.Output)
	if perr != nil {
		return nil, fmt.Errorf("bench in VM (exit %d): %w\n%s", res.ExitCode, perr, res.Output)
	}
	if len(results) == 0 {
		return nil, fmt.Errorf("bench in VM measured nothing (exit %d): %s", res.ExitCode, skipLines(res.Output))
	}
	for i := range results {
		results[i].Where = "vm"
	}
	return results, nil
}

func vmScript(o VMOptions) string {
	var sizes []string
	for _, n := range o.Services {
		sizes = append(sizes, strconv.Itoa(n))
	}
	args := fmt.Sprintf("--modes %s --services %s --endpoints %d --connects %d --partial-runs %d --endpoint-runs %d --json",
		strings.Join(o.Modes, ","), strings.Join(sizes, ","), o.Endpoints, o.Connects, o.PartialRuns, o.EndpointRuns)
	if o.NoBaseline {
		args += " --no-baseline"
	}
	// stderr (progress, skip reasons) goes to the script's output, which is the
	// console: live progress on the host, and a skipped mode's reason in Output.
	// The descriptor limit is a node's (systemd's DefaultLimitNOFILE hard limit,
	// as test/e2e/ipvs uses), not the guest init's 4,096: userspace mode holds
	// one socket per Service.
	return fmt.Sprintf(`ulimit -n 524288
/usr/local/bin/kproxy bench compare %s 2>&1 >/tmp/compare.json
rc=$?
echo %s
cat /tmp/compare.json
echo %s
exit $rc`, args, vmJSONBegin, vmJSONEnd)
}

func parseVMOutput(out string) ([]Result, error) {
	i := strings.Index(out, vmJSONBegin)
	j := strings.Index(out, vmJSONEnd)
	if i < 0 || j < i {
		return nil, fmt.Errorf("no JSON markers in the guest output")
	}
	var results []Result
	if err := json.Unmarshal([]byte(out[i+len(vmJSONBegin):j]), &results); err != nil {
		return nil, fmt.Errorf("guest JSON: %w", err)
	}
	return results, nil
}

// linePrefixer forwards whole lines with a prefix, so guest output is told apart.
type linePrefixer struct {
	w      io.Writer
	prefix string
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, sc.Text())
	}
	return len(p), nil
}

// skipLines picks the guest's "skipped MODE: reason" and error lines.
func skipLines(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "skipped ") || strings.HasPrefix(l, "kproxy:") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) == 0 {
		return "no reason printed"
	}
	return strings.Join(keep, "; ")
}
