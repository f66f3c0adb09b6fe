package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// textHandler writes klog's text format:
//
//	I1206 18:20:21.123456   12345 daemon.go:120] "msg" key="value" n=3
//
// a severity letter (I, W, E), the date and time, the process id, the caller
// and the quoted message with its key/value pairs, as klog's structured calls do.
type textHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Leveler
	pid    int
	prefix string // attributes added with WithAttrs, already formatted
	group  string // dotted group prefix for keys
}

func newTextHandler(w io.Writer, level slog.Leveler) *textHandler {
	return &textHandler{mu: &sync.Mutex{}, w: w, level: level, pid: os.Getpid()}
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteByte(severity(r.Level))
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.Format("0102 15:04:05.000000"))
	fmt.Fprintf(&b, " %7d %s] ", h.pid, caller(r.PC))
	b.WriteString(strconv.Quote(r.Message))
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	var b strings.Builder
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	n.prefix += b.String()
	return &n
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.group = h.group + name + "."
	return &n
}

func severity(l slog.Level) byte {
	switch {
	case l >= slog.LevelError:
		return 'E'
	case l >= slog.LevelWarn:
		return 'W'
	default:
		return 'I'
	}
}

// caller is "file.go:line" of the logging call, as klog prints it.
func caller(pc uintptr) string {
	if pc == 0 {
		return "???:1"
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	if f.File == "" {
		return "???:1"
	}
	return filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
}

// writeAttr writes ` key=value`: strings, durations, times and errors quoted,
// numbers and booleans bare, groups flattened into dotted keys.
func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		prefix := group
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			writeAttr(b, prefix, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group + a.Key)
	b.WriteByte('=')
	b.WriteString(formatValue(a.Value))
}

func formatValue(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return strconv.Quote(v.String())
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool:
		return v.String()
	case slog.KindDuration:
		return strconv.Quote(v.Duration().String())
	case slog.KindTime:
		return strconv.Quote(v.Time().Format(time.RFC3339Nano))
	}
	switch x := v.Any().(type) {
	case error:
		return strconv.Quote(x.Error())
	case fmt.Stringer:
		return strconv.Quote(x.String())
	case nil:
		return "<nil>"
	default:
		// Slices, maps and structs as JSON, as klog writes them.
		if b, err := json.Marshal(x); err == nil {
			return string(b)
		}
		return strconv.Quote(fmt.Sprintf("%+v", x))
	}
}
