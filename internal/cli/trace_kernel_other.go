//go:build !linux

package cli

import (
	"context"
	"fmt"

	"kproxy.dev/kproxy/internal/trace"
)

func traceKernel(context.Context, string, trace.Packet) (*trace.Result, error) {
	return nil, fmt.Errorf("reading the kernel's rules needs Linux; give --from-file")
}

func nodeOptions() (trace.Options, error) { return trace.Options{}, nil }
