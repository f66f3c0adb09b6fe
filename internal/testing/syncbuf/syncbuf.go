// Package syncbuf is a test helper: a bytes.Buffer safe for a process's output or a
// logger written from other goroutines while the test reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer whose contents can be read while writes go on.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far; "" for a nil Buffer.
func (s *Buffer) String() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
