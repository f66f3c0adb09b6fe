// Package logging builds kproxy's logger: log/slog for kproxy's own code, writing
// klog's text format (the default) or component-base's JSON layout
// (--logging-format=json), with kube-proxy's -v levels. client-go and every other
// library that logs through klog are routed into the same logger, and warnings and
// errors repeated with the same message and values are written once per window
// (a down API server makes client-go's reflectors retry every few seconds).
//
// Verbosity: klog's V(n) is slog.Level(-n). V(0) is slog.LevelInfo, V(4) is
// slog.LevelDebug. Log at V(2) with logger.Log(ctx, logging.V(2), "msg", ...).
package logging

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"k8s.io/klog/v2"
)

// Formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// DefaultRepeatWindow is how long an identical warning or error stays quiet after
// it was written.
const DefaultRepeatWindow = 5 * time.Minute

// MaxValueBytes bounds each logged string value, so that hostile input (a 32 MiB
// object name) cannot make a 100 MB log line.
const MaxValueBytes = 1024

// V is klog's verbosity level n as a slog level.
func V(n int) slog.Level { return slog.Level(-n) }

// Options configure a logger.
type Options struct {
	// Format is FormatText ("" too) or FormatJSON.
	Format string
	// Verbosity is -v: messages at V(n) for n <= Verbosity are written.
	Verbosity int
	// SplitStream writes errors to ErrOut and everything else to Out; otherwise
	// everything goes to ErrOut, as klog does.
	SplitStream bool
	// Out and ErrOut default to os.Stdout and os.Stderr.
	Out, ErrOut io.Writer
	// RepeatWindow is how long a repeated warning or error stays quiet; 0 means
	// DefaultRepeatWindow, a negative value turns de-duplication off.
	RepeatWindow time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Level, if set, holds the verbosity instead of Verbosity, so that it can be
	// changed while running (SetVerbosity, /debug/flags/v).
	Level *slog.LevelVar
}

// New builds the logger.
func New(o Options) *slog.Logger {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.ErrOut == nil {
		o.ErrOut = os.Stderr
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var level slog.Leveler = V(o.Verbosity)
	if o.Level != nil {
		level = o.Level
	}
	var h slog.Handler
	mk := func(w io.Writer) slog.Handler {
		if o.Format == FormatJSON {
			return newJSONHandler(w, level)
		}
		return newTextHandler(w, level)
	}
	if o.SplitStream {
		h = splitHandler{info: mk(o.Out), err: mk(o.ErrOut)}
	} else {
		h = mk(o.ErrOut)
	}
	h = truncatingHandler{next: h}
	if o.RepeatWindow >= 0 {
		window := o.RepeatWindow
		if window == 0 {
			window = DefaultRepeatWindow
		}
		h = newDedupHandler(h, window, o.Now)
	}
	return slog.New(h)
}

// SetVerbosity changes -v while running: the logger's level (held in level) and
// klog's, for kube-proxy's PUT /debug/flags/v.
func SetVerbosity(level *slog.LevelVar, v int) {
	level.Set(V(v))
	setKlogVerbosity(v)
}

func setKlogVerbosity(v int) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", strconv.Itoa(v))
}

// RouteKlog sends everything logged through klog (client-go's reflectors and
// leader election, apimachinery's HandleError) to log, with klog's own
// verbosity set to the same -v so that klog.V(n) guards agree.
func RouteKlog(log *slog.Logger, verbosity int) {
	setKlogVerbosity(verbosity)
	klog.SetSlogLogger(log)
}
