package iptables

import (
	"bufio"
	"bytes"
	"math"
	"strconv"
	"strings"
)

// kernelTable is what iptables-save shows of one table: every chain with its rules
// (specs after "-A NAME ").
type kernelTable map[string][]string

// kernelState is the kernel's view of the tables kproxy reads.
type kernelState map[string]kernelTable

// parseSave reads iptables-save output (one or more tables).
func parseSave(data []byte) kernelState {
	out := kernelState{}
	var cur kernelTable
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			cur = kernelTable{}
			out[line[1:]] = cur
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if _, ok := cur[name]; !ok {
				cur[name] = nil
			}
		case strings.HasPrefix(line, "-A "):
			name, spec, _ := strings.Cut(line[3:], " ")
			cur[name] = append(cur[name], spec)
		}
	}
	return out
}

// sameRules compares rendered rules with rules read back from the kernel.
func sameRules(kernel, want []string) bool {
	if len(kernel) != len(want) {
		return false
	}
	for i := range want {
		if kernel[i] != want[i] && normalizeSpec(kernel[i]) != normalizeSpec(want[i]) {
			return false
		}
	}
	return true
}

// normalizeSpec rewrites what iptables-save prints differently from what was
// written: the statistic module stores the probability as a 31-bit fraction and
// prints it with eleven decimals, while rules are written with ten.
func normalizeSpec(s string) string {
	const key = "--probability "
	i := strings.Index(s, key)
	if i < 0 {
		return s
	}
	start := i + len(key)
	end := strings.IndexByte(s[start:], ' ')
	if end < 0 {
		end = len(s) - start
	}
	p, err := strconv.ParseFloat(s[start:start+end], 64)
	if err != nil {
		return s
	}
	fixed := math.Round(p * 0x80000000)
	return s[:start] + strconv.FormatFloat(fixed/0x80000000, 'f', 11, 64) + s[start+end:]
}

// hasJumpTo reports whether a built-in chain already leads into target.
func hasJumpTo(rules []string, target string) bool {
	suffix := "-j " + target
	for _, r := range rules {
		if strings.HasSuffix(r, suffix) {
			return true
		}
	}
	return false
}
