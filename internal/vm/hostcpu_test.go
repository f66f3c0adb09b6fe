package vm

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestParseStatCPUCountsFromTheLastParenthesis: utime and stime are fields 14
// and 15, counted after a command name that holds spaces and parentheses.
func TestParseStatCPUCountsFromTheLastParenthesis(t *testing.T) {
	stat := "4242 (qemu (x) 1 2) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 100 0 0\n"
	d, ok := parseStatCPU(stat)
	if !ok || d != 18010*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 18.01s (1234+567 ticks of 10 ms)", d, ok)
	}
	for _, bad := range []string{"", "4242 qemu S 1", "4242 (qemu) S 1 2 3"} {
		if _, ok := parseStatCPU(bad); ok {
			t.Errorf("parseStatCPU(%q) accepted a malformed line", bad)
		}
	}
}

// TestCPUStampGrowsWithWork: the stamp of a live process reports its CPU, which
// grows while it computes; a process that is gone leaves the line as it was.
func TestCPUStampGrowsWithWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before, ok := processCPU(os.Getpid())
	if !ok {
		t.Fatal("no CPU time for this very process")
	}
	x := 0
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	after, _ := processCPU(os.Getpid())
	if after <= before {
		t.Fatalf("CPU time did not grow over 300 ms of work (%d loops): %v then %v", x, before, after)
	}
	if s := cpuStamp(os.Getpid(), "ipvs/1000: cold full sync"); !strings.HasPrefix(s, "[qemu cpu ") || !strings.HasSuffix(s, "s] ipvs/1000: cold full sync") {
		t.Fatalf("stamp %q", s)
	}
	if s := cpuStamp(1<<30, "line"); s != "line" {
		t.Fatalf("a missing process must leave the line alone, got %q", s)
	}
}
