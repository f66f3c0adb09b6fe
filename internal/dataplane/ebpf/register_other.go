//go:build !linux

package ebpf

import (
	"context"
	"errors"

	"kproxy.dev/kproxy/internal/dataplane"
)

var errNotLinux = errors.New("mode ebpf needs Linux")

func init() {
	dataplane.Register(dataplane.Mode{Name: ModeName,
		New:     func(dataplane.Options) (dataplane.Dataplane, error) { return nil, errNotLinux },
		Cleanup: func(context.Context, dataplane.Options) error { return nil }})
}
