package source

import (
	"fmt"
	"unicode/utf8"
)

// MaxLoggedBytes is how much of one value taken from input (a name, a field value)
// kproxy puts in a log line or an error it reports; an error text, which may list a
// few such values, is clipped at MaxLoggedErrorBytes.
const (
	MaxLoggedBytes      = 256
	MaxLoggedErrorBytes = 4 * MaxLoggedBytes
)

// Clip shortens s to at most MaxLoggedBytes bytes, cut at a UTF-8 boundary, followed
// by "…" and the original length, so that a 32 MiB name costs a short log line, not
// a 32 MiB one. Shorter strings are returned as they are. Every value from input
// that kproxy logs or reports goes through Clip.
func Clip(s string) string {
	return ClipTo(s, MaxLoggedBytes)
}

// ClipTo is Clip with another limit (n > 0).
func ClipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return clipped(s[:n+1], len(s))
}

// ClipBytes is Clip for a value still in the input buffer: only the part kept is
// copied.
func ClipBytes(b []byte) string {
	if len(b) <= MaxLoggedBytes {
		return string(b)
	}
	return clipped(string(b[:MaxLoggedBytes+1]), len(b))
}

// clipped cuts head (the first n+1 bytes of a longer value) at a rune boundary
// within n bytes.
func clipped(head string, total int) string {
	cut := len(head) - 1
	for cut > 0 && !utf8.RuneStart(head[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", head[:cut], total)
}
