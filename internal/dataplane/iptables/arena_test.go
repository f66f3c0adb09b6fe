package iptables

import (
	"fmt"
	"strings"
	"testing"
)

// A rule built in its own arena (a fixed rule, a partial sync's few) must not keep
// a whole chunk alive: that was 256 KiB per fixed rule and per partial sync.
func TestArenaForFewRulesStaysSmall(t *testing.T) {
	s := newSpec()
	rule := s.add("-m", "conntrack", "--ctstate", "INVALID").jump("DROP")
	if rule != "-m conntrack --ctstate INVALID -j DROP" {
		t.Fatalf("rule %q", rule)
	}
	if c := cap(s.a.chunk); c > arenaFirstChunk {
		t.Fatalf("one rule holds a %d-byte chunk, want at most %d", c, arenaFirstChunk)
	}
}

// Strings stay intact while chunks grow and rules move to fresh chunks, including
// a rule longer than any chunk so far.
func TestArenaStringsSurviveChunkGrowth(t *testing.T) {
	a := &arena{}
	var got, want []string
	for i := range 5000 {
		word := fmt.Sprintf("w%d", i)
		n := 1 + i%40
		if i == 100 {
			n = 3000 // longer than the first chunks
		}
		s := a.spec()
		for range n {
			s.add(word)
		}
		got = append(got, s.str())
		want = append(want, strings.TrimSpace(strings.Repeat(word+" ", n)))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %.60q, want %.60q", i, got[i], want[i])
		}
	}
	if c := cap(a.chunk); c != arenaChunk {
		t.Fatalf("chunk of %d bytes after %d strings, want growth to %d", c, len(got), arenaChunk)
	}
}
