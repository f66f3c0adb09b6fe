//go:build !linux

package userspace

import (
	"io"
	"net"
	"sync/atomic"
)

// copyChunk is how much one copy round moves before the byte counters are
// updated, so that long-lived connections show traffic (and rates) while open.
const copyChunk = 1 << 20

// copyDir relays src to dst until src's EOF (nil) or an error, in rounds of
// copyChunk; timeouts within the connection's idle timeout are re-armed.
func copyDir(dst, src *net.TCPConn, r *tcpRelay, n *atomic.Uint64) error {
	for {
		k, err := io.CopyN(dst, src, copyChunk)
		n.Add(uint64(k))
		if k > 0 {
			r.touch()
		}
		switch {
		case err == io.EOF:
			return nil
		case err == nil:
		case r.rearm(err, src, false) && r.rearm(err, dst, true):
		default:
			return err
		}
	}
}

// pipePool is empty: only Linux splices.
type pipePool struct{}

var pipes pipePool
