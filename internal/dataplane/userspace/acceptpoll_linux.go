package userspace

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// acceptPoller watches the TCP listeners that have no accept goroutine. A
// goroutine blocked in Accept keeps a 4 KiB stack: with one per listener,
// 10,000 Services held 40 MiB of stacks, more than everything else the
// dataplane keeps. Here an idle listener is one entry in an epoll set, armed
// for one event (EPOLLONESHOT, level-triggered); one goroutine waits on that
// set through Go's own poller (the epoll descriptor is itself pollable) and,
// when a listener has a connection, starts an accept goroutine for it
// (acceptBurst), which accepts until none came for acceptLinger and then arms
// the listener again. Level triggering means a connection that arrives
// between the goroutine's last accept and the re-arm is reported at once.
type acceptPoller struct {
	file *os.File
	rc   syscall.RawConn
	// start launches an accept goroutine for a listener that has a connection;
	// it is called with mu held and never after close.
	start func(*acceptWatch)

	mu      sync.Mutex
	closed  bool
	next    uint64
	watches map[uint64]*acceptWatch
}

// acceptWatch is one listener in the poller.
type acceptWatch struct {
	p  *acceptPoller
	id uint64
	fe *frontend
	ln *net.TCPListener
}

func newAcceptPoller(start func(*acceptWatch)) (*acceptPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), "kproxy-accept-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	ap := &acceptPoller{file: f, rc: rc, start: start, watches: map[uint64]*acceptWatch{}}
	go ap.run()
	return ap, nil
}

// run waits for listeners with connections until the poller is closed.
func (ap *acceptPoller) run() {
	events := make([]unix.EpollEvent, 128)
	var ready []uint64
	for {
		err := ap.rc.Read(func(fd uintptr) bool {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err != nil || n <= 0 {
				return false // wait for readiness
			}
			ready = ready[:0]
			for _, ev := range events[:n] {
				ready = append(ready, uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32)
			}
			return true
		})
		if err != nil {
			return // closed
		}
		ap.mu.Lock()
		for _, id := range ready {
			if w := ap.watches[id]; w != nil && !ap.closed {
				ap.start(w)
			}
		}
		ap.mu.Unlock()
	}
}

// add puts ln in the set, armed.
func (ap *acceptPoller) add(fe *frontend, ln *net.TCPListener) (*acceptWatch, error) {
	ap.mu.Lock()
	ap.next++
	w := &acceptWatch{p: ap, id: ap.next, fe: fe, ln: ln}
	ap.watches[w.id] = w
	ap.mu.Unlock()
	if err := w.ctl(unix.EPOLL_CTL_ADD); err != nil {
		ap.mu.Lock()
		delete(ap.watches, w.id)
		ap.mu.Unlock()
		return nil, err
	}
	return w, nil
}

// arm asks for the listener's next connection. On a closed listener it does
// nothing (closing took it out of the set).
func (w *acceptWatch) arm() error { return w.ctl(unix.EPOLL_CTL_MOD) }

// remove takes the listener out of the set; the caller closes it next.
func (w *acceptWatch) remove() {
	w.p.mu.Lock()
	delete(w.p.watches, w.id)
	w.p.mu.Unlock()
	_ = w.ctl(unix.EPOLL_CTL_DEL)
}

// ctl changes the listener's entry. It runs inside the listener's Control,
// so the descriptor cannot be closed (and its number reused) meanwhile.
func (w *acceptWatch) ctl(op int) error {
	rc, err := w.ln.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	err = rc.Control(func(lfd uintptr) {
		perr := w.p.rc.Control(func(efd uintptr) {
			ev := &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(uint32(w.id)), Pad: int32(uint32(w.id >> 32))}
			if op == unix.EPOLL_CTL_DEL {
				ev = nil
			}
			cerr = unix.EpollCtl(int(efd), op, int(lfd), ev)
		})
		if perr != nil {
			cerr = perr // the poller is closed
		}
	})
	if err != nil {
		return err // the listener is closed
	}
	if cerr != nil {
		return fmt.Errorf("epoll_ctl: %w", cerr)
	}
	return nil
}

// close stops the poller: no accept goroutine starts once it returns. The
// listeners are the caller's to close.
func (ap *acceptPoller) close() {
	ap.mu.Lock()
	ap.closed = true
	ap.mu.Unlock()
	ap.file.Close()
}

// serveListener serves ln through the poller, started on first use; where it
// cannot be (no epoll), ln gets an accept goroutine of its own.
func (p *Proxier) serveListener(fe *frontend, ln *net.TCPListener) error {
	if p.accepts == nil {
		ap, err := newAcceptPoller(func(w *acceptWatch) {
			p.relays.Add(1)
			go p.acceptTCP(w.fe, w.ln, w)
		})
		if err != nil {
			p.log.Warn("accepting through epoll failed; one goroutine per listener", "err", err)
			p.relays.Add(1)
			go p.acceptTCP(fe, ln, nil)
			return nil
		}
		p.accepts = ap
	}
	w, err := p.accepts.add(fe, ln)
	if err != nil {
		return err
	}
	fe.watch = w
	return nil
}

// closeAccepts stops the poller (Drain, Cleanup).
func (p *Proxier) closeAccepts() {
	if p.accepts != nil {
		p.accepts.close()
	}
}

// len is the number of listeners in the set (for tests).
func (ap *acceptPoller) len() int {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return len(ap.watches)
}
