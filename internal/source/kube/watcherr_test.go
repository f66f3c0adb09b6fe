package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"kproxy.dev/kproxy/internal/source/sourcetest"
)

// A failing API server must reach OnWatchError (and so /healthz) within seconds.
func TestListFailuresReachOnWatchError(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	got := make(chan error, 16)
	src, err := New(Options{Client: client, OnWatchError: func(err error) {
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
