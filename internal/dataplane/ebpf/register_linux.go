//go:build linux

package ebpf

import (
	"context"
	"fmt"
	"os"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/dataplane/nftables"
)

// Environment overrides of the attach point and the pin directory, for `kproxy
// bench` and tests that must not attach to the host's cgroup v2 root.
const (
	EnvCgroup = "KPROXY_EBPF_CGROUP"
	EnvPinDir = "KPROXY_EBPF_PIN_DIR"
)

func init() {
	// KernelNAT: the nftables part NATs north-south traffic, whose stale UDP flows
	// the core's conntrack cleanup must delete; socket LB itself creates none.
	dataplane.Register(dataplane.Mode{Name: ModeName, New: newFromOptions, KernelNAT: true,
		Cleanup: func(context.Context, dataplane.Options) error { return detachPinned(pinDir()) }})
	dataplane.RegisterKernelLister(ModeName, func(context.Context) ([]dataplane.VirtualService, error) {
		return listPinned(pinDir())
	})
}

func pinDir() string {
	if d := os.Getenv(EnvPinDir); d != "" {
		return d
	}
	return DefaultPinDir
}

// newFromOptions builds the mode for the daemon: socket LB on the cgroup v2 root
// for east-west traffic, and the nftables mode in the same process, given the
// whole snapshot, for north-south traffic (see README.md).
func newFromOptions(o dataplane.Options) (dataplane.Programmer, error) {
	ns, err := nftables.New(o)
	if err != nil {
		return nil, fmt.Errorf("ebpf mode needs the nftables mode for NodePort, LoadBalancer and externalIPs: %w", err)
	}
	return NewProxier(Config{PinDir: pinDir(), Cgroup: os.Getenv(EnvCgroup), NorthSouth: ns,
		DestroySockets: true, Logger: o.Log()})
}
