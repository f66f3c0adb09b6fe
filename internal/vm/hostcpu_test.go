package vm

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

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
