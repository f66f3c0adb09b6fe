//go:build linux

package userspace

import (
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRelayCopiesWhenNoPipeCanBeMade runs TestRelayCarriesBytesIntact with a
// relay that cannot make a pipe (as when the process is out of descriptors): the
// bytes must still pass, intact, copied through a buffer, where the relay used
// to close the connection.
func TestRelayCopiesWhenNoPipeCanBeMade(t *testing.T) {
	t.Parallel()
	p, _ := testProxier(t, nil)
	var tries atomic.Int64
	p.pipes = &pipePool{pipe2: func([]int, int) error {
		tries.Add(1)
		return unix.EMFILE
	}}
	echoIntact(t, p)
	if tries.Load() == 0 {
		t.Fatal("the relay never asked for a pipe: the fallback was not exercised")
	}
	if n := p.pipes.inUse.Load(); n != 0 {
		t.Fatalf("%d pipes counted in use, none could be made", n)
	}
}
