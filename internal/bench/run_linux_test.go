//go:build linux

package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"kproxy.dev/kproxy/internal/dataplane"
	"kproxy.dev/kproxy/internal/state"
)

// TestMain lets the test binary play the re-exec'd child: Run starts
// `<exe> bench measure-in-netns --spec ...`, here with the fake modes below.
func TestMain(m *testing.M) {
	if len(os.Args) > 3 && os.Args[1] == "bench" && os.Args[2] == ChildCommand {
		fs := flag.NewFlagSet(ChildCommand, flag.ExitOnError)
		spec := fs.String(ChildSpecFlag, "", "")
		_ = fs.Parse(os.Args[3:])
		if err := ChildMain(context.Background(), *spec, os.Stdout, os.Stderr); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func init() {
	dataplane.Register(dataplane.Mode{Name: "benchfake", New: func(dataplane.Options) (dataplane.Programmer, error) { return &fakeDP{}, nil }})
	dataplane.Register(dataplane.Mode{Name: "benchfake-plain", New: func(dataplane.Options) (dataplane.Programmer, error) { return &plainDP{}, nil }})
	dataplane.Register(dataplane.Mode{Name: "benchfake-nokernel", New: func(dataplane.Options) (dataplane.Programmer, error) {
		return nil, errors.New("kernel lacks the fake facility: load module fake")
	}})
}

// plainDP is a mode without Bencher. It fails unless it runs inside the bench
// namespace (the veth only exists there), which proves the re-exec landed there.
type plainDP struct{ synced int }

func (p *plainDP) Apply(_ context.Context, req *dataplane.Request) (dataplane.Applied, error) {
	snap := req.Snapshot
	if _, err := netlink.LinkByName(nodeLink); err != nil {
		return dataplane.Applied{}, fmt.Errorf("not inside the bench namespace: %w", err)
	}
	if p.synced == 0 && (!req.Full || len(req.Changed) != snap.Len()) {
		return dataplane.Applied{}, fmt.Errorf("first sync got %d changed of %d (full=%v)", len(req.Changed), snap.Len(), req.Full)
	}
	if p.synced > 0 && len(req.Changed) != 2 {
		return dataplane.Applied{}, fmt.Errorf("partial sync got %d changed ports, want 2", len(req.Changed))
	}
	p.synced++
	return dataplane.Applied{Rules: map[string]int{"nat": 2 * snap.Len(), "filter": 1}}, nil
}

func (p *plainDP) Cleanup(context.Context) error { p.synced = 0; return nil }

type fakeDP struct{ plainDP }

func (f *fakeDP) Render(snap *state.Snapshot) (int, error) { return snap.Len(), nil }
func (f *fakeDP) BaselineApply(context.Context, *state.Snapshot) (time.Duration, error) {
	if f.synced != 0 {
		return 0, errors.New("baseline must start from empty state (Cleanup first)")
	}
	return 42 * time.Millisecond, nil
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

func TestRunInNamespaceWithFakeModes(t *testing.T) {
	needRoot(t)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Spec{Mode: "benchfake", Services: 50, Endpoints: 2, PartialRuns: 2}, RunOptions{Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Rules != 101 || res.Services != 50 || res.Endpoints != 2 || res.Mode != "benchfake" {
		t.Errorf("result %+v: want 101 rules for 50 Services x 2", res)
	}
	if res.BaselineApplySeconds == nil || *res.BaselineApplySeconds != 0.042 || res.RenderSeconds == nil {
		t.Errorf("baseline %v render %v: want 0.042 and measured", res.BaselineApplySeconds, res.RenderSeconds)
	}
	if len(res.PartialSyncRuns) != 2 {
		t.Errorf("partial runs %v, want 2", res.PartialSyncRuns)
	}
	if !strings.Contains(progress.String(), "cold full sync") {
		t.Errorf("no progress shown:\n%s", progress.String())
	}
	assertNoBenchNamespaces(t)

	res, err = Run(context.Background(), Spec{Mode: "benchfake-plain", Services: 5, Endpoints: 1}, RunOptions{})
	if err != nil {
		t.Fatalf("Run without Bencher: %v", err)
	}
	if res.RenderSeconds != nil || res.BaselineApplySeconds != nil {
		t.Errorf("mode without Bencher: render %v baseline %v, want null", res.RenderSeconds, res.BaselineApplySeconds)
	}
}

func TestRunPassesTheModesOwnError(t *testing.T) {
	needRoot(t)
	_, err := Run(context.Background(), Spec{Mode: "benchfake-nokernel", Services: 5, Endpoints: 1}, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "load module fake") || StageOf(err) != StageNew {
		t.Fatalf("err = %v (stage %q), want the mode's own error at stage new", err, StageOf(err))
	}
	assertNoBenchNamespaces(t)
}

func TestChildRefusesOutsideItsNamespace(t *testing.T) {
	var out bytes.Buffer
	if err := ChildMain(context.Background(), `{"mode":"benchfake","services":1,"endpoints":1}`, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "refusing to measure") {
		t.Errorf("child without a namespace: %s, want a refusal", out.String())
	}
}

// TestEnvReachesBackend checks the wiring every lookup-cost figure relies on:
// from the node namespace, any workload endpoint address reaches the listener.
func TestEnvReachesBackend(t *testing.T) {
	needRoot(t)
	env, err := NewEnv(fmt.Sprintf("compare-test-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Error(err)
		}
		assertNoBenchNamespaces(t)
	})
	var samples Samples
	err = inThread(func() error {
		if err := netns.Set(env.node); err != nil {
			return err
		}
		var err error
		samples, err = ConnectLatency(netip.AddrPortFrom(EndpointAddr(29999), EndpointPort), 50)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(samples.Connect) != 50 || Percentile(samples.Connect, 50) <= 0 {
		t.Errorf("samples %d, p50 %v", len(samples.Connect), Percentile(samples.Connect, 50))
	}
	for i := range samples.Connect {
		if samples.RoundTrip[i] < samples.Connect[i] {
			t.Fatalf("round trip %v shorter than its connect %v", samples.RoundTrip[i], samples.Connect[i])
		}
	}
}

func assertNoBenchNamespaces(t *testing.T) {
	t.Helper()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("compare-%d-", os.Getpid())) || strings.HasPrefix(e.Name(), fmt.Sprintf("compare-test-%d", os.Getpid())) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}
