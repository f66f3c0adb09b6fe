package userspace

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The relay splices each direction socket -> pipe -> socket, so payload never
// enters the process, like io.Copy between two *net.TCPConn. Unlike io.Copy it
// takes a pipe only while bytes are in flight: io.Copy holds one pipe per
// direction for the connection's whole life, blocked in its wait for data, so an
// idle relayed connection held 6 descriptors (2 sockets, 2 pipes) instead of 2,
// and the runtime's pipe pool kept them after the connection closed until the
// garbage collector ran. See README.md ("Descriptors per connection").

// pipeSize is the capacity asked of each pipe: one splice moves up to this much.
const pipeSize = 1 << 20

// maxIdlePipes bounds the pipes kept for reuse; more are closed when released.
const maxIdlePipes = 64

type pipe struct {
	r, w int
	size int
}

// pipePool keeps a few empty pipes, so that a busy relay does not create one per
// burst, without holding more than maxIdlePipes when traffic stops.
type pipePool struct {
	mu   sync.Mutex
	free []*pipe
	// inUse counts pipes taken and not yet released (for tests and benchmarks).
	inUse atomic.Int64
	// pipe2 makes a pipe; nil means unix.Pipe2 (tests make it fail).
	pipe2 func(fds []int, flags int) error
}

var pipes pipePool

func (pp *pipePool) get() (*pipe, error) {
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		pp.inUse.Add(1)
		return p, nil
	}
	pp.mu.Unlock()
	var fds [2]int
	pipe2 := pp.pipe2
	if pipe2 == nil {
		pipe2 = unix.Pipe2
	}
	if err := pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	p := &pipe{r: fds[0], w: fds[1], size: 64 << 10}
	// A larger pipe means fewer splice calls per byte; the kernel may refuse it
	// (pipe-user-pages-soft for unprivileged users), then the default stays.
	if n, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		p.size = n
	}
	pp.inUse.Add(1)
	return p, nil
}

// put releases a pipe; one that still holds bytes (its connection failed midway)
// is closed rather than reused.
func (pp *pipePool) put(p *pipe, empty bool) {
	pp.inUse.Add(-1)
	if empty {
		pp.mu.Lock()
		if len(pp.free) < maxIdlePipes {
			pp.free = append(pp.free, p)
			pp.mu.Unlock()
			return
		}
		pp.mu.Unlock()
	}
	unix.Close(p.r)
	unix.Close(p.w)
}

const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// splice moves up to n bytes from rfd to wfd without blocking: every descriptor
// it is given is non-blocking (the runtime's sockets, pipes made O_NONBLOCK) and
// spliceFlags has SPLICE_F_NONBLOCK, so it returns EAGAIN rather than wait.
//
// It is a raw system call, which the scheduler does not see. Through
// syscall.Syscall (unix.Splice) each call entered the scheduler's syscall
// state, and the relay parks often enough (waiting for data or buffer space)
// that the runtime's sysmon thread was usually asleep: entering a system call
// woke it (a futex wake-up, a context switch), and it then polled in 20 us
// sleeps while splices ran. In a relay process that was 12% of its CPU
// (runtime.sysmon) and 3 of its 8 context switches per relayed MiB. A raw call
// holds its P for as long as the splice runs (the TCP transmit of at most a
// pipe's worth, well under a millisecond) and never waits.
// docs/performance.md, "Relay CPU per MiB".
func splice(rfd, wfd, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(rfd), 0, uintptr(wfd), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// splicer moves one direction's bytes; pending is what sits in the pipe.
type splicer struct {
	pool    *pipePool
	p       *pipe
	pending int
}

// errNoPipe is a pipe that could not be made, typically for want of a
// descriptor (EMFILE, ENFILE): the relay then copies through a buffer.
var errNoPipe = errors.New("no splice pipe")

// copyDir relays src to dst until src's EOF (nil) or an error. Timeouts within
// the connection's idle timeout are re-armed (rearm).
func copyDir(dst, src *net.TCPConn, r *tcpRelay, n *atomic.Uint64) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	wc, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	s := splicer{pool: r.pipes}
	defer s.release()
	for {
		if s.pending == 0 {
			eof, err := s.fill(rc)
			if errors.Is(err, errNoPipe) {
				// No descriptor for a pipe (the connection caps leave room for
				// pipes by default, but an operator may raise them): move what
				// src has through a buffer, which needs none, and try a pipe
				// again for the next burst.
				eof, err = copyOnce(dst, src, r, n)
			}
			if err != nil {
				if r.rearm(err, src, false) {
					continue
				}
				return err
			}
			if eof {
				return nil
			}
			r.touch()
		}
		if err := s.drain(wc, r, n); err != nil {
			if r.rearm(err, dst, true) {
				continue
			}
			return err
		}
	}
}

// fill waits until src has bytes and splices them into a pipe. It takes the pipe
// only once bytes are there and gives it back whenever src runs dry, so a
// connection waiting for data holds no pipe.
func (s *splicer) fill(rc interface {
	Read(func(uintptr) bool) error
}) (eof bool, err error) {
	var serr error
	err = rc.Read(func(fd uintptr) bool {
		if s.p == nil {
			var perr error
			if s.p, perr = s.pool.get(); perr != nil {
				serr = fmt.Errorf("%w: %w", errNoPipe, perr)
				return true
			}
		}
		for {
			k, e := splice(int(fd), s.p.w, s.p.size)
			switch e {
			case nil:
				s.pending = int(k)
				eof = k == 0
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				s.release()
				return false // wait until readable, holding no pipe
			default:
				serr = e
				return true
			}
		}
	})
	if err == nil {
		err = serr
	}
	return eof, err
}

// drain splices what the pipe holds into dst, waiting while dst's buffer is full.
func (s *splicer) drain(wc interface {
	Write(func(uintptr) bool) error
}, r *tcpRelay, n *atomic.Uint64) error {
	var serr error
	err := wc.Write(func(fd uintptr) bool {
		for s.pending > 0 {
			k, e := splice(s.p.r, int(fd), s.pending)
			switch e {
			case nil:
				s.pending -= int(k)
				n.Add(uint64(k))
				r.touch()
			case unix.EINTR:
			case unix.EAGAIN:
				return false
			default:
				serr = e
				return true
			}
		}
		return true
	})
	if err == nil {
		err = serr
	}
	return err
}

func (s *splicer) release() {
	if s.p != nil {
		s.pool.put(s.p, s.pending == 0)
		s.p = nil
	}
}

// copyBufs are the buffers of copyOnce.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyOnce waits until src has bytes (or its end) and copies what one read
// returns to dst through a buffer. Deadlines within the idle timeout are
// re-armed as in copyDir.
func copyOnce(dst, src *net.TCPConn, r *tcpRelay, n *atomic.Uint64) (eof bool, err error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	k, err := src.Read(*bp)
	if k > 0 {
		r.touch()
	}
	for off := 0; off < k; {
		w, werr := dst.Write((*bp)[off:k])
		off += w
		n.Add(uint64(w))
		if w > 0 {
			r.touch()
		}
		if werr != nil && !r.rearm(werr, dst, true) {
			return false, werr
		}
	}
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
