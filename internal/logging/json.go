package logging

import (
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
)

// newJSONHandler writes component-base's JSON layout (the one kube-proxy writes
// with --logging-format=json): "ts" as float seconds since the epoch, "caller" as
// file:line, "msg", "v" (the verbosity) on non-error lines, "err" on errors, then
// the key/value pairs.
func newJSONHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{AddSource: true, Level: level, ReplaceAttr: jsonAttr})
}

func jsonAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		t := a.Value.Time()
		return slog.Float64("ts", float64(t.UnixNano())/1e9)
	case slog.SourceKey:
		if src, ok := a.Value.Any().(*slog.Source); ok && src != nil {
			return slog.String("caller", filepath.Base(filepath.Dir(src.File))+"/"+filepath.Base(src.File)+":"+strconv.Itoa(src.Line))
		}
		return slog.Attr{}
	case slog.LevelKey:
		l := a.Value.Any().(slog.Level)
		if l >= slog.LevelError {
			return slog.Attr{}
		}
		v := 0
		if l < slog.LevelInfo {
			v = -int(l)
		}
		return slog.Int("v", v)
	}
	return a
}
