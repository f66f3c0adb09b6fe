package kube

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"

	"kproxy.dev/kproxy/internal/logging"
	"kproxy.dev/kproxy/internal/source/sourcetest"
	"kproxy.dev/kproxy/internal/testing/fakekube"
	"kproxy.dev/kproxy/internal/testing/syncbuf"
)

// A failing API server must reach OnWatchError (and so /healthz) within seconds.
func TestListFailuresReachOnWatchError(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	got := make(chan error, 16)
	src, err := New(Options{Client: fakekube.New(client), OnWatchError: func(err error) {
		select {
		case got <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx, sourcetest.NewRecorder(), func() {}) }()
	select {
	case err := <-got:
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("OnWatchError not called for a failing list")
	}
}

// A down API server shows in kproxy's log at the default level, through klog,
// once however often client-go retries.
func TestFailingAPIServerIsLoggedOnce(t *testing.T) {
	var out syncbuf.Buffer
	log := logging.New(logging.Options{ErrOut: &out})
	logging.RouteKlog(log, 0)
	defer klog.ClearLogger()
	client := fake.NewClientset()
	client.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")
	})
	var failures atomic.Int32
	src, err := New(Options{Client: fakekube.New(client), Logger: log, OnWatchError: func(error) { failures.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = src.Run(ctx, sourcetest.NewRecorder(), func() {}); close(done) }()
	deadline := time.Now().Add(wait)
	for failures.Load() < 4 && time.Now().Before(deadline) { // two retries of each informer
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if failures.Load() < 4 {
		t.Fatalf("only %d list failures in %v", failures.Load(), wait)
	}
	lines := strings.Count(out.String(), `"Failed to watch"`)
	if lines == 0 || !strings.Contains(out.String(), "connection refused") || !strings.HasPrefix(out.String(), "E") {
		t.Fatalf("the failure is not in the log at the default level:\n%s", out.String())
	}
	if lines > 3 { // one per informer (Services, EndpointSlices, ServiceCIDRs)
		t.Errorf("%d lines for %d failures: not de-duplicated:\n%s", lines, failures.Load(), out.String())
	}
}

// When the API server comes back, the source says so in the log and to
// OnWatchRestored.
func TestRestoredWatchIsReported(t *testing.T) {
	var out syncbuf.Buffer
	log := logging.New(logging.Options{ErrOut: &out})
	client := fake.NewClientset(service("default", "web", nil))
	var calls atomic.Int32
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= 2 {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	restored := make(chan struct{}, 4)
	src, err := New(Options{Client: fakekube.New(client), Logger: log, OnWatchRestored: func() { restored <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx, sourcetest.NewRecorder(), func() {}) }()
	select {
	case <-restored:
	case <-time.After(3 * wait):
		t.Fatalf("no restore reported after %d lists:\n%s", calls.Load(), out.String())
	}
	if !strings.Contains(out.String(), `"watch restored" source="kube" resource="Services"`) {
		t.Errorf("log:\n%s", out.String())
	}
}
