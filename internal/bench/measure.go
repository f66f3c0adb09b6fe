//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	kpconfig "k8s.io/kube-proxy/config/v1alpha1"

	"kproxy.dev/kproxy/internal/config"
	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// Spec says what one measurement does. It travels as JSON from the parent
// process to the child re-exec'd inside the network namespace.
type Spec struct {
	Mode      string `json:"mode"`
	Services  int    `json:"services"`
	Endpoints int    `json:"endpoints"`
	// PartialRuns is how many one-Service changes to time (median reported).
	PartialRuns int `json:"partialRuns"`
	// Netns is the named network namespace the child must be running in; it
	// refuses to program anything elsewhere (the root namespace above all).
	Netns string `json:"netns"`
	// Connects is the number of TCP connects per target Service; 0 skips lookup cost.
	Connects int `json:"connects"`
	// MemProfile, when set, is where the child writes a pprof heap profile (live
	// heap and every allocation since start) right after the syncs.
	MemProfile string `json:"memProfile,omitempty"`
	// EndpointRuns is how many one-endpoint changes (one endpoint of one Service
	// moved, nothing else) to time, median reported; 0 measures none.
	EndpointRuns int `json:"endpointRuns,omitempty"`
	// NoServiceChange skips the one-Service changes, which add a Service of
	// Endpoints endpoints: the endpoints-per-Service series wants only the
	// one-endpoint change of its single large Service.
	NoServiceChange bool `json:"noServiceChange,omitempty"`
	// NoBaseline skips the second, thrown-away render and the baseline load with
	// the kernel's own tool: the scale series charts neither, and at 50,000
	// Services x 5 endpoints `nft -f` alone took 74 s and 1.8 GiB of RSS.
	NoBaseline bool `json:"noBaseline,omitempty"`
}

// Stage names where a measurement failed, so `bench compare` can tell a mode the
// kernel does not support (StageNew) from a mode that broke.
type Stage string

const (
	StageSetup Stage = "setup"
	StageNew   Stage = "new"
	StageSync  Stage = "sync"
)

// StageError is a measurement failure with the stage it happened in.
type StageError struct {
	Stage Stage
	Err   error
}

func (e *StageError) Error() string { return e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

func stageErr(s Stage, err error) error {
	if err == nil {
		return nil
	}
	return &StageError{Stage: s, Err: err}
}

// StageOf returns the stage of err, or "" when it has none.
func StageOf(err error) Stage {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage
	}
	return ""
}

// Measure runs one measurement in the current network namespace, which must be a
// private one (the caller re-execs kproxy inside it). progress gets one line per step.
func Measure(ctx context.Context, s Spec, progress io.Writer) (*Result, error) {
	say := func(format string, a ...any) {
		fmt.Fprintf(progress, "  %s/%d: "+format+"\n", append([]any{s.Mode, s.Services}, a...)...)
	}
	say("building %d Services x %d endpoints", s.Services, s.Endpoints)
	w, err := NewWorkload(WorkloadOptions{Services: s.Services, Endpoints: s.Endpoints})
	if err != nil {
		return nil, stageErr(StageSetup, err)
	}
	say("workload built; %s", memoryNow())
	mode, err := dataplane.Lookup(s.Mode)
	if err != nil {
		return nil, stageErr(StageNew, err)
	}
	undo, err := isolateEBPF(s.Mode)
	if err != nil {
		return nil, stageErr(StageNew, fmt.Errorf("mode %s: %w", s.Mode, err))
	}
	defer undo()
	dp, err := dataplane.Build(mode, dataplane.Options{Config: benchConfig(s.Mode), NodeName: "bench-node"})
	if err != nil {
		return nil, stageErr(StageNew, fmt.Errorf("mode %s: %w", s.Mode, err))
	}
	m := &measurer{spec: s, dp: dp, w: w, say: say, res: &Result{Mode: s.Mode, Services: s.Services, Endpoints: s.Endpoints, Tools: resolveTools(s.Mode)}}
	defer func() { _ = dp.Cleanup(context.WithoutCancel(ctx)) }()
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	return m.res, nil
}

type measurer struct {
	spec Spec
	dp   dataplane.Dataplane
	w    *Workload
	say  func(string, ...any)
	res  *Result
	snap *state.Snapshot
}

// run measures the syncs first and reads the peak RSS right after them, before
// the bench's own extra work (a render whose result is thrown away, the baseline's
// nft/iptables-restore script), so that peak_rss_bytes is what the daemon itself
// needs: the Tracker with the workload, the cold full sync and the changes.
func (m *measurer) run(ctx context.Context) error {
	b, benchable := dataplane.As[dataplane.Bencher](m.dp)
	snap, cs := m.w.Initial()
	m.snap = snap
	// The generator's garbage (the workload's objects, built and dropped) is
	// collected before the clock starts: the cold sync pays for its own only.
	runtime.GC()
	if err := m.fullSync(ctx, snap, cs); err != nil {
		return err
	}
	if m.spec.Connects > 0 {
		m.connect()
	}
	if !m.spec.NoServiceChange {
		if err := m.partialSyncs(ctx); err != nil {
			return err
		}
	}
	if err := m.endpointChanges(ctx); err != nil {
		return err
	}
	m.memory()
	if m.spec.NoBaseline {
		return nil
	}
	if !benchable {
		m.say("mode does not implement dataplane.Bencher: render and baseline are not measured (null)")
		return nil
	}
	if err := m.render(b, snap); err != nil {
		return err
	}
	return m.baseline(ctx, b, snap)
}

// memory records the peak RSS so far and writes the heap profile if asked for.
func (m *measurer) memory() {
	if rss, err := peakRSS(); err == nil {
		m.res.PeakRSSBytes = &rss
		m.say("after the syncs: %s", memoryNow())
	} else {
		m.say("peak RSS not read: %v", err)
	}
	if m.spec.MemProfile == "" {
		return
	}
	if err := writeHeapProfile(m.spec.MemProfile); err != nil {
		m.say("heap profile not written: %v", err)
	}
}

func (m *measurer) render(b dataplane.Bencher, snap *state.Snapshot) error {
	m.say("render")
	start := time.Now()
	if _, err := b.Render(snap); err != nil {
		return stageErr(StageSync, fmt.Errorf("render: %w", err))
	}
	m.res.RenderSeconds = ptr(time.Since(start).Seconds())
	return nil
}

func (m *measurer) fullSync(ctx context.Context, snap *state.Snapshot, cs state.ChangeSet) error {
	m.say("cold full sync")
	st, d, err := m.timedSync(ctx, snap, cs)
	if err != nil {
		return stageErr(StageSync, fmt.Errorf("full sync: %w", err))
	}
	m.res.FullSyncSeconds = d.Seconds()
	m.res.Rules = st.TotalRules()
	m.say("cold full sync: %.3fs, %d rules; %s", m.res.FullSyncSeconds, m.res.Rules, memoryNow())
	return nil
}

func (m *measurer) partialSyncs(ctx context.Context) error {
	runs := max(m.spec.PartialRuns, 1)
	for i := 0; i < runs; i++ {
		m.say("one-Service change %d/%d", i+1, runs)
		snap, cs := m.w.Change()
		_, d, err := m.timedSync(ctx, snap, cs)
		if err != nil {
			return stageErr(StageSync, fmt.Errorf("partial sync: %w", err))
		}
		m.res.PartialSyncRuns = append(m.res.PartialSyncRuns, d.Seconds())
	}
	m.res.PartialSyncSeconds = median(m.res.PartialSyncRuns)
	m.say("one-Service change: %.4fs (median of %d)", m.res.PartialSyncSeconds, runs)
	return nil
}

// endpointChanges times Spec.EndpointRuns syncs that each move one endpoint of
// one existing Service: the change whose cost should not grow with the size of
// that Service or of the cluster.
func (m *measurer) endpointChanges(ctx context.Context) error {
	if m.spec.EndpointRuns < 1 {
		return nil
	}
	for i := 0; i < m.spec.EndpointRuns; i++ {
		m.say("one-endpoint change %d/%d", i+1, m.spec.EndpointRuns)
		snap, cs := m.w.MoveEndpoint()
		_, d, err := m.timedSync(ctx, snap, cs)
		if err != nil {
			return stageErr(StageSync, fmt.Errorf("one-endpoint change: %w", err))
		}
		m.res.EndpointChangeRuns = append(m.res.EndpointChangeRuns, d.Seconds())
	}
	m.res.EndpointChangeSeconds = ptr(median(m.res.EndpointChangeRuns))
	m.say("one-endpoint change: %.4fs (median of %d)", *m.res.EndpointChangeSeconds, m.spec.EndpointRuns)
	return nil
}

// timedSync runs one Sync and adds its CPU time, kproxy's and the tools', to the
// result; only syncs are counted, not workload generation or connect tests.
func (m *measurer) timedSync(ctx context.Context, snap *state.Snapshot, cs state.ChangeSet) (dataplane.SyncStats, time.Duration, error) {
	cpu := startCPU()
	start := time.Now()
	st, err := m.dp.Sync(ctx, snap, cs)
	d := time.Since(start)
	self, tools := cpu.stop()
	m.res.CPUKproxySeconds += self
	m.res.CPUToolsSeconds += tools
	return st, d, err
}

// baseline loads the very snapshot of the cold sync with the kernel's own tool
// into empty state: the reference the cold sync is compared with.
func (m *measurer) baseline(ctx context.Context, b dataplane.Bencher, snap *state.Snapshot) error {
	m.say("baseline apply")
	if err := m.dp.Cleanup(ctx); err != nil {
		return stageErr(StageSync, fmt.Errorf("cleanup before baseline: %w", err))
	}
	d, err := b.BaselineApply(ctx, snap)
	if err != nil {
		return stageErr(StageSync, fmt.Errorf("baseline apply: %w", err))
	}
	m.res.BaselineApplySeconds = ptr(d.Seconds())
	return nil
}

// benchConfig is kube-proxy's defaults with the workload's pod range as
// clusterCIDR, so the client (outside it) is masqueraded as on a real node.
func benchConfig(mode string) *kpconfig.KubeProxyConfiguration {
	c := config.Default()
	c.Mode = kpconfig.ProxyMode(mode)
	c.ClusterCIDR = EndpointCIDR.String()
	return c
}

// connect measures lookup cost: connect latency to the Service matched first and
// the one matched last. The modes render Services in name order, which the
// workload makes index order. A failure is recorded, not fatal: sync figures stay.
func (m *measurer) connect() {
	targets := []struct {
		label        string
		idx          int
		p50, p99     **float64
		rtP50, rtP99 **float64
	}{
		{"first", 0, &m.res.ConnectFirstP50, &m.res.ConnectFirstP99, &m.res.RoundTripFirstP50, new(*float64)},
		{"last", m.spec.Services - 1, &m.res.ConnectLastP50, &m.res.ConnectLastP99, &m.res.RoundTripLastP50, &m.res.RoundTripLastP99},
	}
	m.res.ConnectCount = m.spec.Connects
	for _, t := range targets {
		addr := ServiceAddr(t.idx)
		m.say("%d connects to the Service matched %s (%s)", m.spec.Connects, t.label, addr)
		samples, err := ConnectLatency(addr, m.spec.Connects)
		if err != nil {
			m.res.ConnectError = err.Error()
			m.say("lookup cost not measured: %v", err)
			return
		}
		*t.p50 = ptr(Percentile(samples.Connect, 50).Seconds())
		*t.p99 = ptr(Percentile(samples.Connect, 99).Seconds())
		*t.rtP50 = ptr(Percentile(samples.RoundTrip, 50).Seconds())
		*t.rtP99 = ptr(Percentile(samples.RoundTrip, 99).Seconds())
	}
}
