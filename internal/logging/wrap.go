package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// splitHandler sends errors to one handler and everything else to another
// (--log-text-split-stream, --log-json-split-stream).
type splitHandler struct{ info, err slog.Handler }

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelError {
		return h.err.Enabled(ctx, l)
	}
	return h.info.Enabled(ctx, l)
}

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.err.Handle(ctx, r)
	}
	return h.info.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return splitHandler{info: h.info.WithAttrs(a), err: h.err.WithAttrs(a)}
}

func (h splitHandler) WithGroup(n string) slog.Handler {
	return splitHandler{info: h.info.WithGroup(n), err: h.err.WithGroup(n)}
}

// truncatingHandler bounds the message and every string value to MaxValueBytes.
type truncatingHandler struct{ next slog.Handler }

func (h truncatingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h truncatingHandler) Handle(ctx context.Context, r slog.Record) error {
	n := slog.NewRecord(r.Time, r.Level, truncate(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		n.AddAttrs(truncateAttr(a))
		return true
	})
	return h.next.Handle(ctx, n)
}

func (h truncatingHandler) WithAttrs(a []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(a))
	for i := range a {
		out[i] = truncateAttr(a[i])
	}
	return truncatingHandler{next: h.next.WithAttrs(out)}
}

func (h truncatingHandler) WithGroup(n string) slog.Handler {
	return truncatingHandler{next: h.next.WithGroup(n)}
}

func truncateAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, truncate(v.String()))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok && len(err.Error()) > MaxValueBytes {
			return slog.String(a.Key, truncate(err.Error()))
		}
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i := range g {
			out[i] = truncateAttr(g[i])
		}
		return slog.Group(a.Key, out...)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func truncate(s string) string {
	if len(s) <= MaxValueBytes {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes truncated)", s[:MaxValueBytes], len(s)-MaxValueBytes)
}

// dedupHandler writes a warning or error once per window: the same level,
// message and values again within the window are counted, not written; the next
// one after the window carries "repeated", the number held back.
type dedupHandler struct {
	next  slog.Handler
	st    *dedupState
	attrs string // WithAttrs values, part of the key
}

type dedupState struct {
	mu     sync.Mutex
	window time.Duration
	now    func() time.Time
	seen   map[string]*seenEntry
}

type seenEntry struct {
	last       time.Time
	suppressed int
}

// maxDedupKeys bounds the memory of distinct messages remembered.
const maxDedupKeys = 4096

func newDedupHandler(next slog.Handler, window time.Duration, now func() time.Time) *dedupHandler {
	return &dedupHandler{next: next, st: &dedupState{window: window, now: now, seen: map[string]*seenEntry{}}}
}

func (h *dedupHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *dedupHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	repeated, ok := h.st.admit(h.key(r))
	if !ok {
		return nil
	}
	if repeated > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", repeated))
	}
	return h.next.Handle(ctx, r)
}

func (h *dedupHandler) key(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, "", a)
		return true
	})
	return b.String()
}

// admit says whether a record with this key is written now, and how many like it
// were held back since the last one written.
func (s *dedupState) admit(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.seen[key]
	if ok && now.Sub(e.last) < s.window {
		e.suppressed++
		return 0, false
	}
	if !ok {
		if len(s.seen) >= maxDedupKeys {
			s.seen = map[string]*seenEntry{}
		}
		e = &seenEntry{}
		s.seen[key] = e
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

func (h *dedupHandler) WithAttrs(a []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, x := range a {
		writeAttr(&b, "", x)
	}
	return &dedupHandler{next: h.next.WithAttrs(a), st: h.st, attrs: h.attrs + b.String()}
}

func (h *dedupHandler) WithGroup(n string) slog.Handler {
	return &dedupHandler{next: h.next.WithGroup(n), st: h.st, attrs: h.attrs + "[" + n + "]"}
}
