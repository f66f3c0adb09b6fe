package iptables

import (
	"io"
	"strconv"
)

// zeroCountersAbove is the number of lines in one table section above which the
// section starts with -Z. iptables-nft-restore 1.8.9 with --noflush keeps a sorted
// list of chain names and walks it for every line, which makes large restores
// superlinear (minutes at 10,000 Services); a -Z line makes it fetch the table once
// instead (kernel-baseline.md: about 100x faster). Small restores skip it because
// zeroing also resets every counter in the table.
const zeroCountersAbove = 1000

// section is what one restore writes to one table, kept in the order the lines
// must appear: declarations (which create or empty a chain under --noflush), rule
// deletions, rules replaced in place, whole chains, single inserted rules, and
// finally chain deletions.
type section struct {
	declare []string
	deletes []string
	// replaces are "-R CHAIN N spec" lines: rule N of a chain that is not
	// rewritten, replaced in place.
	replaces []string
	// rules are whole chains, written as "-A NAME spec" lines by render.
	rules   []Chain
	inserts []string
	remove  []string
	written int
	ruleLen int // rule lines in rules
}

// restoreBuilder accumulates the input of one iptables-restore call.
type restoreBuilder struct {
	sections map[string]*section
}

func newRestoreBuilder() *restoreBuilder {
	return &restoreBuilder{sections: map[string]*section{}}
}

func (b *restoreBuilder) table(t string) *section {
	s := b.sections[t]
	if s == nil {
		s = &section{}
		b.sections[t] = s
	}
	return s
}

// declareChain creates the chain, or empties it if it exists. Callers declare each
// chain once (a second declaration would only empty it again).
func (s *section) declareChain(name string) {
	s.declare = append(s.declare, name)
}

// writeChain replaces the chain's content.
func (s *section) writeChain(name string, rules []string) {
	s.declareChain(name)
	if len(rules) > 0 {
		s.rules = append(s.rules, Chain{Name: name, Rules: rules})
	}
	s.written += len(rules)
	s.ruleLen += len(rules)
}

// removeChain empties and deletes the chain.
func (s *section) removeChain(name string) {
	s.declareChain(name)
	s.remove = append(s.remove, name)
}

func (s *section) deleteRule(chain, spec string) {
	s.deletes = append(s.deletes, "-D "+chain+" "+spec)
}

// replaceRule replaces rule number pos (1-based) of a chain this restore does not
// otherwise write.
func (s *section) replaceRule(chain string, pos int, spec string) {
	s.replaces = append(s.replaces, "-R "+chain+" "+strconv.Itoa(pos)+" "+spec)
	s.written++
}

// insertRule puts a rule first in its chain, ahead of any rule that must stay last.
func (s *section) insertRule(chain, spec string) {
	s.inserts = append(s.inserts, "-I "+chain+" 1 "+spec)
	s.written++
}

func (s *section) empty() bool {
	return len(s.declare) == 0 && len(s.deletes) == 0 && len(s.replaces) == 0 && len(s.inserts) == 0
}

func (s *section) lines() int {
	return len(s.declare) + len(s.deletes) + len(s.replaces) + s.ruleLen + len(s.inserts) + len(s.remove)
}

// Empty reports whether the restore would change nothing.
func (b *restoreBuilder) Empty() bool {
	for _, s := range b.sections {
		if !s.empty() {
			return false
		}
	}
	return true
}

// Written counts the rules written, by table.
func (b *restoreBuilder) Written() map[string]int {
	out := map[string]int{tableFilter: 0, tableNAT: 0}
	for t, s := range b.sections {
		if t != tableMangle {
			out[t] = s.written
		}
	}
	return out
}

// Bytes renders the restore input for --noflush. Tables without changes are left
// out entirely.
func (b *restoreBuilder) Bytes() []byte { return b.render(true) }

func (b *restoreBuilder) render(noflush bool) []byte {
	// Sized exactly up front: at 10,000 Services the input is about 16 MB, and
	// growing a buffer (plus one concatenated string per declared chain) cost
	// about as much CPU as writing it.
	lw := &lineWriter{buf: make([]byte, 0, b.size(noflush))}
	b.write(noflush, lw)
	return lw.buf
}

// restoreChunk is how much of the input WriteTo holds before writing it out.
const restoreChunk = 64 << 10

// WriteTo writes the same input as Bytes to w, about restoreChunk bytes at a time,
// so that the whole input (16 MB at 10,000 Services) is never in memory at once.
func (b *restoreBuilder) WriteTo(w io.Writer) (int64, error) {
	lw := &lineWriter{buf: make([]byte, 0, restoreChunk+4<<10), w: w}
	b.write(true, lw)
	lw.flush()
	return lw.n, lw.err
}

// lineWriter collects restore input in buf; with a writer it passes buf on whenever
// a line ends past restoreChunk bytes, and stops at the first error.
type lineWriter struct {
	buf []byte
	w   io.Writer
	n   int64
	err error
}

func (lw *lineWriter) endLine() {
	lw.buf = append(lw.buf, '\n')
	if lw.w != nil && len(lw.buf) >= restoreChunk {
		lw.flush()
	}
}

func (lw *lineWriter) flush() {
	if lw.w == nil || len(lw.buf) == 0 {
		return
	}
	if lw.err == nil {
		n, err := lw.w.Write(lw.buf)
		lw.n += int64(n)
		lw.err = err
	}
	lw.buf = lw.buf[:0]
}

// write renders the input into lw, line by line.
func (b *restoreBuilder) write(noflush bool, lw *lineWriter) {
	for _, t := range []string{tableMangle, tableFilter, tableNAT} {
		s := b.sections[t]
		if s == nil || s.empty() {
			continue
		}
		lw.buf = append(append(lw.buf, '*'), t...)
		lw.endLine()
		if noflush && s.lines() > zeroCountersAbove {
			lw.buf = append(lw.buf, "-Z"...)
			lw.endLine()
		}
		for _, c := range s.declare {
			lw.buf = append(append(append(lw.buf, ':'), c...), " - [0:0]"...)
			lw.endLine()
		}
		for _, l := range s.deletes {
			lw.buf = append(lw.buf, l...)
			lw.endLine()
		}
		for _, l := range s.replaces {
			lw.buf = append(lw.buf, l...)
			lw.endLine()
		}
		for _, c := range s.rules {
			for _, r := range c.Rules {
				lw.buf = append(append(append(append(lw.buf, "-A "...), c.Name...), ' '), r...)
				lw.endLine()
			}
		}
		for _, l := range s.inserts {
			lw.buf = append(lw.buf, l...)
			lw.endLine()
		}
		for _, c := range s.remove {
			lw.buf = append(append(lw.buf, "-X "...), c...)
			lw.endLine()
		}
		lw.buf = append(lw.buf, "COMMIT"...)
		lw.endLine()
	}
}

// size is the exact length of render's output.
func (b *restoreBuilder) size(noflush bool) int {
	n := 0
	for _, t := range []string{tableMangle, tableFilter, tableNAT} {
		s := b.sections[t]
		if s == nil || s.empty() {
			continue
		}
		n += len(t) + 2 + len("COMMIT\n")
		if noflush && s.lines() > zeroCountersAbove {
			n += len("-Z\n")
		}
		for _, c := range s.declare {
			n += len(c) + len(": - [0:0]\n")
		}
		for _, l := range s.deletes {
			n += len(l) + 1
		}
		for _, l := range s.replaces {
			n += len(l) + 1
		}
		for _, c := range s.rules {
			for _, r := range c.Rules {
				n += len("-A ") + len(c.Name) + 1 + len(r) + 1
			}
		}
		for _, l := range s.inserts {
			n += len(l) + 1
		}
		for _, c := range s.remove {
			n += len("-X ") + len(c) + 1
		}
	}
	return n
}

// FullText renders the whole ruleset as one restore input for empty tables: what a
// plain iptables-restore (the benchmark baseline) loads.
func FullText(r *Ruleset) []byte {
	b := newRestoreBuilder()
	names := r.sortedServiceNames()
	disp := r.dispatchRules(names)
	for _, ref := range r.Dispatch {
		b.table(ref.Table).writeChain(ref.Name, disp[ref])
	}
	for _, c := range r.Fixed {
		b.table(c.Table).writeChain(c.Name, c.Rules)
	}
	for _, n := range names {
		for _, c := range r.Services[n].Chains {
			b.table(c.Table).writeChain(c.Name, c.Rules)
		}
	}
	for _, t := range writeTables {
		b.table(t).declareChain(chainCanary)
	}
	for _, j := range r.Jumps {
		s := b.table(j.Table)
		s.rules = append(s.rules, Chain{Name: j.Chain, Rules: []string{j.Spec}})
		s.written++
		s.ruleLen++
	}
	return b.render(false)
}
