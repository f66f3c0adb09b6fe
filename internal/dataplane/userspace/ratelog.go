package userspace

import (
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

const (
	// causeLogEvery is how often one cause of relay failures is logged again.
	causeLogEvery = time.Minute
	// maxCauses bounds the causes remembered; past it the table starts over.
	maxCauses = 1024
)

// causeLog logs relay failures at the default level once per distinct cause (a
// place and an error kind) and then at most once per causeLogEvery, with the
// number of occurrences in between, so that a flood of failures costs one line a
// minute and no failure is only visible at debug.
type causeLog struct {
	log *slog.Logger
	mu  sync.Mutex
	m   map[string]*causeEntry
}

type causeEntry struct {
	at         time.Time
	suppressed int
}

func newCauseLog(log *slog.Logger) *causeLog {
	return &causeLog{log: log, m: map[string]*causeEntry{}}
}

// warn logs msg for the cause (where, err) unless it was logged less than
// causeLogEvery ago; attrs are added to the line.
func (c *causeLog) warn(msg, where string, err error, attrs ...any) {
	key := msg + "\x00" + where + "\x00" + errKind(err)
	now := time.Now()
	c.mu.Lock()
	e := c.m[key]
	if e != nil && now.Sub(e.at) < causeLogEvery {
		e.suppressed++
		c.mu.Unlock()
		return
	}
	if e == nil {
		if len(c.m) >= maxCauses {
			clear(c.m)
		}
		e = &causeEntry{}
		c.m[key] = e
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	c.mu.Unlock()
	attrs = append(attrs, "err", err)
	if n > 0 {
		attrs = append(attrs, "repeatedSinceLastLog", n)
	}
	c.log.Warn(msg, attrs...)
}

// errKind names an error by its errno where it has one (the message also holds
// addresses and ports, which would make every failure distinct).
func errKind(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return "timeout"
	}
	return err.Error()
}
