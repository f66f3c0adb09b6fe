package userspace

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

func TestCauseLogOncePerCause(t *testing.T) {
	var buf bytes.Buffer
	c := newCauseLog(slog.New(slog.NewTextHandler(&buf, nil)))
	refused := func(port int) error {
		return fmt.Errorf("dial tcp 10.0.0.1:%d: %w", port, syscall.ECONNREFUSED)
	}
	for i := 0; i < 100; i++ {
		c.warn("endpoint unreachable", "10.0.0.1:80", refused(40000+i))
	}
	c.warn("endpoint unreachable", "10.0.0.1:80", errors.New("no route"))
	c.warn("endpoint unreachable", "10.0.0.2:80", refused(1))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (one per endpoint and error kind):\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=WARN") {
			t.Fatalf("line not at the default level: %s", l)
		}
	}
	// The next line of a cause, once due, says how many were left out.
	e := c.m["endpoint unreachable\x0010.0.0.1:80\x00"+syscall.ECONNREFUSED.Error()]
	e.at = e.at.Add(-causeLogEvery)
	buf.Reset()
	c.warn("endpoint unreachable", "10.0.0.1:80", refused(2))
	if !strings.Contains(buf.String(), "repeatedSinceLastLog=99") {
		t.Fatalf("want the 99 repeats counted, got %s", buf.String())
	}
}
