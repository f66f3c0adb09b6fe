// Package dataplane defines the interface every proxy mode implements and the registry
// through which the daemon, `kproxy --cleanup`, `kproxy list` and `kproxy bench` find
// the modes. Each mode lives in a subpackage and registers itself from init.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/state"
)

// Dataplane programs one mode. Sync must be idempotent: calling it twice with the
// same snapshot changes nothing the second time. Sync is never called concurrently.
type Dataplane interface {
	// Sync makes the dataplane match snap. changed lists the ServicePorts that differ
	// from the snapshot of the previous successful Sync; after a failed Sync the
	// dataplane must fall back to a full sync on its own.
	Sync(ctx context.Context, snap *state.Snapshot, changed state.ChangeSet) (SyncStats, error)
	// Cleanup removes everything the dataplane ever programmed.
	Cleanup(ctx context.Context) error
}

// SyncStats reports what one Sync did, for metrics and `kproxy bench`.
type SyncStats struct {
	// Full is true when the sync rewrote everything rather than only changes.
	Full bool
	// Rules is the number of rules or kernel objects kproxy owns after the sync, by
	// table (iptables: "nat", "filter"; others may use one key such as "ipvs").
	Rules map[string]int
	// Written is the number of rules or objects written by this sync, by table.
	Written map[string]int
	// NoLocalEndpoints counts Services with Local policy but no local endpoint, by
	// traffic_policy ("internal", "external").
	NoLocalEndpoints map[string]int
	// Skipped is true when the core found nothing to do (no change, no damage, the
	// full sync period not over): no sync happened and no metric is recorded.
	Skipped bool
}

// TotalRules sums Rules over all tables.
func (s SyncStats) TotalRules() int {
	n := 0
	for _, v := range s.Rules {
		n += v
	}
	return n
}

// Options are what every mode is built from.
type Options struct {
	// Config is the effective KubeProxyConfiguration (file, defaults and flags).
	Config *kpconfig.KubeProxyConfiguration
	// NodeName is this node's name.
	NodeName string
	// Registerer takes the mode's own metrics; nil means do not register.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ProxyHealthy reports the daemon's own health (no queued update older than
	// 2 x syncPeriod), for the serviceProxyHealthy field of eTP=Local health-check
	// node ports (healthcheck.Options.Healthy); nil means always healthy.
	ProxyHealthy func() bool
	// Relay bounds the connections of modes that relay them themselves
	// (userspace); the zero value means each mode's defaults.
	Relay RelayLimits
}

// RelayLimits are the userspace relay's connection limits (kproxy's own
// --userspace-* flags). In each field 0 means the default and a negative value
// means no limit.
type RelayLimits struct {
	// MaxConns caps the relayed TCP connections and UDP flows of the node.
	MaxConns int
	// MaxConnsPerClient caps those from one client address (one /64 in IPv6).
	MaxConnsPerClient int
	// IdleTimeout closes a TCP connection that moved no byte either way for this long.
	IdleTimeout time.Duration
}

// Log returns the logger, or a discarding one.
func (o Options) Log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Mode describes one registered proxy mode.
type Mode struct {
	Name string
	// New builds the mode's Programmer. It checks what the kernel must offer and
	// returns an error that says how to fix what is missing. Build wraps it in the
	// core.
	New func(o Options) (Programmer, error)
	// KernelNAT says the mode NATs in the kernel, so the core deletes conntrack
	// entries of stale flows after each sync.
	KernelNAT bool
	// Cleanup removes what this mode (or a kube-proxy in the same layout) left
	// behind, without a running daemon. It must succeed when there is nothing to do.
	Cleanup func(ctx context.Context, o Options) error
	// CleanupKubeProxy, when set, removes what kube-proxy left in the same mode that
	// this mode does not take over in place (nftables: kube-proxy's own tables). The
	// daemon runs it at start; modes that share kube-proxy's layout leave it nil.
	CleanupKubeProxy func(ctx context.Context, o Options) error
}

var (
	mu    sync.RWMutex
	modes = map[string]Mode{}
	// linuxOnly are the modes built only on Linux, named in Lookup's error
	// elsewhere.
	linuxOnly = map[string]bool{"iptables": true, "ipvs": true, "nftables": true, "ebpf": true}
)

// Register adds a mode; it panics on a duplicate name (a programming error).
func Register(m Mode) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := modes[m.Name]; dup {
		panic("dataplane: mode registered twice: " + m.Name)
	}
	modes[m.Name] = m
}

// Lookup returns the named mode.
func Lookup(name string) (Mode, error) {
	mu.RLock()
	defer mu.RUnlock()
	m, ok := modes[name]
	if !ok && linuxOnly[name] && runtime.GOOS != "linux" {
		return Mode{}, fmt.Errorf("proxy mode %q needs Linux (this is %s; available here: %v)", name, runtime.GOOS, namesLocked())
	}
	if !ok {
		return Mode{}, fmt.Errorf("proxy mode %q is not available (available: %v)", name, namesLocked())
	}
	return m, nil
}

// Names lists the registered modes, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	out := make([]string, 0, len(modes))
	for n := range modes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lister is implemented by modes that can show their virtual-server table the way
// `ipvsadm -Ln` does (userspace from the running daemon, ipvs from the kernel).
type Lister interface {
	List(ctx context.Context) ([]VirtualService, error)
}

// VirtualService is one row group of `kproxy list`. JSON field names are an
// interface for scripts: keep them.
type VirtualService struct {
	Service   string   `json:"service,omitempty"` // "ns/name:port"
	Protocol  string   `json:"protocol"`
	Address   string   `json:"address"` // "ip:port"
	Scheduler string   `json:"scheduler"`
	Flags     []string `json:"flags,omitempty"`
	// PersistentSeconds is the ClientIP affinity timeout, 0 when none.
	PersistentSeconds int          `json:"persistentSeconds,omitempty"`
	RealServers       []RealServer `json:"realServers"`
	Stats             *Stats       `json:"stats,omitempty"`
}

// RealServer is one endpoint of a VirtualService.
type RealServer struct {
	Address    string `json:"address"`
	Forward    string `json:"forward"` // "Masq", "Local", "Route"
	Weight     int    `json:"weight"`
	ActiveConn int64  `json:"activeConn"`
	InActConn  int64  `json:"inActConn"`
	Stats      *Stats `json:"stats,omitempty"`
}

// Stats are traffic counters and rates, where the mode knows them.
type Stats struct {
	Conns    uint64  `json:"conns"`
	InPkts   uint64  `json:"inPkts"`
	OutPkts  uint64  `json:"outPkts"`
	InBytes  uint64  `json:"inBytes"`
	OutBytes uint64  `json:"outBytes"`
	CPS      float64 `json:"cps"`
	InPPS    float64 `json:"inPPS"`
	OutPPS   float64 `json:"outPPS"`
	InBPS    float64 `json:"inBPS"`
	OutBPS   float64 `json:"outBPS"`
}

// Bencher is implemented by modes that `kproxy bench sync` can measure. Render must
// be pure (no kernel access); BaselineApply loads the rendered ruleset with the
// kernel's own tool into empty state, the reference a sync is compared with.
type Bencher interface {
	Render(snap *state.Snapshot) (rules int, err error)
	BaselineApply(ctx context.Context, snap *state.Snapshot) (time.Duration, error)
}

// Drainer is implemented by modes that carry connections themselves (userspace):
// Drain waits for open connections to finish, until ctx is done or the mode's own
// bound (30 s for userspace); userspace keeps accepting meanwhile so that a
// successor process can take its listening addresses over (see its README). The
// daemon calls it on SIGTERM before exiting; kernel modes need nothing of the kind.
type Drainer interface {
	Drain(ctx context.Context) error
}

// PartialError is what Sync returns when some Services could not be programmed but
// every other one was: the dataplane serves the new snapshot except for those, and
// retries them on its own in every later Sync. A caller should report it (log,
// metric) but may count the sync as done for health: one bad Service must not make
// the whole node look unhealthy. errors.As finds it; Unwrap gives the per-Service
// errors, each naming its Service.
type PartialError struct {
	Errs []error
}

func (e *PartialError) Error() string { return errors.Join(e.Errs...).Error() }

// Unwrap returns the per-Service errors.
func (e *PartialError) Unwrap() []error { return e.Errs }

// IsPartial reports whether err is a PartialError and nothing more.
func IsPartial(err error) bool {
	pe, ok := err.(*PartialError)
	return ok && pe != nil
}
