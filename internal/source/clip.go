package source

import (
	"fmt"
	"unicode/utf8"
)

// MaxLoggedBytes is how much of one value taken from input (a name, a field value,
// an error quoting either) kproxy puts in a log line or an error it reports.
const MaxLoggedBytes = 256

// Clip shortens s to at most MaxLoggedBytes bytes, cut at a UTF-8 boundary, followed
// by "…" and the original length, so that a 32 MiB name costs a short log line, not
// a 32 MiB one. Shorter strings are returned as they are. Every value from input
// that kproxy logs or reports goes through Clip.
func Clip(s string) string {
	if len(s) <= MaxLoggedBytes {
		return s
	}
	cut := MaxLoggedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cut], len(s))
}
